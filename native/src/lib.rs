//! jobwire's matching index, for Python: `service/matching/index.py` is its only user and says what
//! it promises. Text arrives as `str` and is normalized here (ASCII) or by the Python
//! reference (anything else); answers leave as the matching slots, packed in `bytes`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

mod index;
mod words;

use index::Criteria;

/// Call `f` with each normalized word of `text`.
fn each_word(
    py: Python<'_>,
    general: &PyObject,
    buf: &mut Vec<u8>,
    text: &str,
    mut f: impl FnMut(&str),
) -> PyResult<()> {
    if text.is_ascii() {
        words::clean_ascii(text.as_bytes(), buf);
        for word in buf.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            f(std::str::from_utf8(words::stem(word)).expect("ASCII is UTF-8"));
        }
    } else {
        let found: Vec<String> = general.call1(py, (text,))?.extract(py)?;
        found.iter().for_each(|w| f(w));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Form {
    Plain,
    Employer,
    City,
}

/// Subscriptions by slot, indexed; `match_posting` and `match_article` answer with the slots
/// that match, as native-endian `uint32` in `bytes` (`memoryview(b).cast("I")` reads them).
#[pyclass(module = "jobwire_native")]
struct Index {
    core: index::Index,
    // `service.normalize.general_words`: the rules for text that is not ASCII.
    general: PyObject,
    buf: Vec<u8>,
    employer: Vec<u32>,
    title: Vec<u32>,
    city: Vec<u32>,
}

impl Index {
    /// `text` as word ids, in a name's form; with `intern`, new words get ids, else they are
    /// `UNKNOWN`.
    fn ids(
        &mut self,
        py: Python<'_>,
        text: &str,
        form: Form,
        intern: bool,
        out: &mut Vec<u32>,
    ) -> PyResult<()> {
        out.clear();
        let vocabulary = &mut self.core.vocabulary;
        each_word(py, &self.general, &mut self.buf, text, |w| {
            out.push(if intern {
                vocabulary.intern(w)
            } else {
                vocabulary.get(w)
            })
        })?;
        match form {
            Form::Plain => {}
            Form::Employer => vocabulary.employer_form(out),
            Form::City => vocabulary.city_form(out),
        }
        Ok(())
    }

    fn all_ids(
        &mut self,
        py: Python<'_>,
        raw: &[String],
        form: Form,
        intern: bool,
    ) -> PyResult<Vec<Vec<u32>>> {
        raw.iter()
            .map(|text| {
                let mut out = Vec::new();
                self.ids(py, text, form, intern, &mut out)?;
                Ok(out)
            })
            .collect()
    }
}

fn slots<'py>(py: Python<'py>, found: &[u32]) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, found.len() * 4, |buf| {
        for (to, slot) in buf.chunks_exact_mut(4).zip(found) {
            to.copy_from_slice(&slot.to_ne_bytes());
        }
        Ok(())
    })
}

#[pymethods]
impl Index {
    /// `general_words`, `legal_forms` and `city_words` are `service.normalize`'s: the rules
    /// for text that is not ASCII, the legal forms trailing employer names drop, and the city
    /// abbreviations spelled out.
    #[new]
    fn new(
        general_words: PyObject,
        legal_forms: Vec<String>,
        city_words: Vec<(String, String)>,
    ) -> Self {
        Index {
            core: index::Index::new(words::Vocabulary::new(&legal_forms, &city_words)),
            general: general_words,
            buf: Vec::new(),
            employer: Vec::new(),
            title: Vec::new(),
            city: Vec::new(),
        }
    }

    /// File a subscription under `slot` (free, below 2**29). `kinds`: 1 postings, 2
    /// articles, 3 both.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        py: Python<'_>,
        slot: u32,
        kinds: u8,
        employers: Vec<String>,
        cities: Vec<String>,
        titles: Vec<String>,
        exclude: Vec<String>,
    ) -> PyResult<()> {
        let criteria = Criteria {
            kinds,
            employers: self.all_ids(py, &employers, Form::Employer, true)?,
            cities: self.all_ids(py, &cities, Form::City, true)?,
            titles: self.all_ids(py, &titles, Form::Plain, true)?,
            exclude: self.all_ids(py, &exclude, Form::Plain, true)?,
        };
        self.core.add(slot, criteria).map_err(PyValueError::new_err)
    }

    /// Take a subscription out of the index; False if the slot was free.
    fn remove(&mut self, slot: u32) -> bool {
        self.core.remove(slot)
    }

    fn match_posting<'py>(
        &mut self,
        py: Python<'py>,
        employer: &str,
        title: &str,
        city: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (mut e, mut t, mut c) = (
            std::mem::take(&mut self.employer),
            std::mem::take(&mut self.title),
            std::mem::take(&mut self.city),
        );
        self.ids(py, employer, Form::Employer, false, &mut e)?;
        self.ids(py, title, Form::Plain, false, &mut t)?;
        self.ids(py, city, Form::City, false, &mut c)?;
        let answer = slots(py, self.core.posting(&e, &t, &c));
        (self.employer, self.title, self.city) = (e, t, c);
        answer
    }

    fn match_article<'py>(
        &mut self,
        py: Python<'py>,
        headline: &str,
        body: &str,
        companies: Vec<String>,
        cities: Vec<String>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (mut h, mut b) = (
            std::mem::take(&mut self.title),
            std::mem::take(&mut self.employer),
        );
        self.ids(py, headline, Form::Plain, false, &mut h)?;
        self.ids(py, body, Form::Plain, false, &mut b)?;
        let companies = self.all_ids(py, &companies, Form::Employer, false)?;
        let cities = self.all_ids(py, &cities, Form::City, false)?;
        let answer = slots(py, self.core.article(&h, &b, &companies, &cities));
        (self.title, self.employer) = (h, b);
        answer
    }

    /// The normalized words of `text`, as matching sees them (tests hold them to Python's).
    fn words(&mut self, py: Python<'_>, text: &str) -> PyResult<Vec<String>> {
        let mut out = Vec::new();
        each_word(py, &self.general, &mut self.buf, text, |w| {
            out.push(w.to_owned())
        })?;
        Ok(out)
    }

    /// Counts of what the index holds: subscriptions, keys, values, first_words,
    /// with_exclude.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, count) in self.core.stats() {
            out.set_item(name, count)?;
        }
        Ok(out)
    }
}

#[pymodule]
fn jobwire_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Index>()
}
