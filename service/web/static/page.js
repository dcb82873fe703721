// jobwire's one script, for comfort only: every form works without it.
// - The live preview: as you type, the events this alert would have matched are fetched from
//   /preview (rendered and escaped by the server) and replace the preview on the page.
// - Your time zone, from the browser, on a new alert's form that still says UTC.
"use strict";
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-preview]");
  const preview = document.getElementById("preview");
  if (!form || !preview) return;

  const zone = form.querySelector("input[name=timezone]");
  try {
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && "localZone" in form.dataset && zone.value === "UTC" && local) zone.value = local;
  } catch (e) { /* an old browser: UTC stays */ }

  const criteria = ["employers", "titles", "cities", "exclude", "kinds"];
  let timer = null;
  let inFlight = null;
  let last = "";

  async function update() {
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (criteria.includes(name)) query.append(name, value);
    }
    const asked = query.toString();
    if (asked === last) return;
    last = asked;
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    preview.setAttribute("aria-busy", "true");
    try {
      const answer = await fetch(form.dataset.preview + "?" + asked, {
        signal: inFlight.signal,
        headers: { Accept: "text/html" },
        credentials: "same-origin",
      });
      if (answer.ok) preview.innerHTML = await answer.text();
    } catch (e) {
      if (e.name !== "AbortError") last = "";
    } finally {
      preview.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(update, 250);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(update, 50);
  });
});
