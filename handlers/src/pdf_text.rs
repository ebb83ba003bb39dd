//! `pdf-text`: the text of each page of a PDF, with the pure-Rust `pdf-extract` crate.

use async_trait::async_trait;
use marie_protocol::HandlerError;
use pdf_extract::{Document, PlainTextOutput, output_doc_page};
use serde::{Deserialize, Serialize};

use crate::handler::{Handler, JobInput};

/// The `pdf-text` handler: its output is a [`PdfTextOutput`] as JSON,
/// `{"pages":[{"page":1,"text":"..."}, ...]}`.
///
/// A payload that is not a PDF, is corrupt, needs a password, or makes the parser
/// panic fails with [`HandlerError::invalid_input`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PdfText;

/// The text of one page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageText {
    /// The page number, from 1.
    pub page: u32,
    /// The page's text, in content-stream order, lines separated by `\n`, without
    /// leading or trailing whitespace.
    pub text: String,
}

/// The output of `pdf-text`: every page, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfTextOutput {
    /// The pages.
    pub pages: Vec<PageText>,
}

#[async_trait]
impl Handler for PdfText {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError> {
        let payload = input.payload;
        let pages = super::run_blocking(move || extract_pdf_pages(&payload)).await?;
        serde_json::to_vec(&PdfTextOutput { pages }).map_err(|e| {
            HandlerError::transient(format!("could not encode the pdf-text output: {e}"))
        })
    }
}

/// The text of every page of the PDF in `pdf`. Blocking and CPU-bound: call it from
/// `spawn_blocking`. Never panics: a panic of the PDF parser is reported as
/// [`HandlerError::invalid_input`].
///
/// A document encrypted with an empty user password is decrypted; one that needs a
/// real password is refused. A page whose text cannot be extracted fails the whole
/// document rather than being dropped.
pub fn extract_pdf_pages(pdf: &[u8]) -> Result<Vec<PageText>, HandlerError> {
    match super::catch_panic(|| extract(pdf)) {
        Ok(result) => result,
        Err(panic) => Err(unreadable(format!("the PDF parser gave up on it: {panic}"))),
    }
}

fn extract(pdf: &[u8]) -> Result<Vec<PageText>, HandlerError> {
    // The header may follow up to 1024 bytes of junk.
    if !pdf[..pdf.len().min(1024)].windows(5).any(|w| w == b"%PDF-") {
        return Err(unreadable(format!(
            "no %PDF- header; the payload starts with {}",
            super::excerpt(pdf)
        )));
    }
    let mut doc = Document::load_mem(pdf).map_err(|e| unreadable(e.to_string()))?;
    // lopdf already tries the empty user password while loading; a document that is
    // still encrypted needs a real one.
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(unreadable(
            "it is encrypted with a password; remove the password and resubmit",
        ));
    }
    let pages = doc.get_pages();
    let mut out = Vec::with_capacity(pages.len());
    for &page in pages.keys() {
        let mut text = String::new();
        output_doc_page(&doc, &mut PlainTextOutput::new(&mut text), page)
            .map_err(|e| unreadable(format!("page {page}: {e}")))?;
        out.push(PageText {
            page,
            text: text.trim().to_owned(),
        });
    }
    Ok(out)
}

fn unreadable(reason: impl std::fmt::Display) -> HandlerError {
    HandlerError::invalid_input(format!("not a readable PDF: {reason}"))
}
