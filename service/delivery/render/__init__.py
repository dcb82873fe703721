"""What an alert says: events → messages (a title; the body as text, HTML and Markdown).

    renderer = Renderer.from_settings(settings.templates)        # at start; TemplateError stops it
    renderer.instant(event, subscription_name, unsubscribe_url)  # one match, now
    renderer.digest(subscription_name, events, unsubscribe_url, manage_url)  # many, at once

How a message becomes what one target takes (format, the service's length limits) is
service/delivery/send/fit.py.
"""

from __future__ import annotations

from config.settings import TemplateSettings
from service.delivery.render.message import Message
from service.delivery.render.renderer import TEMPLATE_NAMES, Renderer, TemplateError

__all__ = [
    "TEMPLATE_NAMES",
    "Message",
    "Renderer",
    "TemplateError",
    "check_templates",
    "render_test",
]


def check_templates(settings: TemplateSettings) -> str:
    """`jobwire templates check`: which file each template is read from, once every one has
    rendered the sample events; else TemplateError, naming each file and line at fault."""
    renderer = Renderer.from_settings(settings)
    lines = [f"{name}: {source}" for name, source in renderer.sources().items()]
    return "\n".join(["templates OK (each renders the sample events):", *lines])


def render_test(subscription_name: str, unsubscribe_url: str | None = None) -> Message:
    """The alert `POST /subscriptions/{id}/test` sends, so a user sees a target works."""
    from markupsafe import escape

    from service.delivery.render import markdown

    name = f" '{subscription_name}'" if subscription_name else ""
    said = (
        f"This is a test alert for your jobwire subscription{name}.",
        "Real alerts arrive like this one when a new posting or article matches.",
    )
    body = "\n".join(said)
    html = "<p>" + "<br>\n".join(str(escape(line)) for line in said) + "</p>"
    md = "  \n".join(markdown.escape(line) for line in said)
    if unsubscribe_url:
        body += f"\n\n--\nUnsubscribe: {unsubscribe_url}"
        link = escape(unsubscribe_url)
        html += f'\n<hr>\n<p>Unsubscribe: <a href="{link}">{link}</a></p>'
        md += f"\n\n{markdown.link('Unsubscribe', unsubscribe_url)}"
    return Message(
        "jobwire test alert", body, html=html, markdown=md, unsubscribe_url=unsubscribe_url
    )
