//! XHTML content documents to plain text. A tokenizer, not a DOM: content documents
//! in the wild use HTML entities (`&nbsp;`) that strict XML refuses and sometimes close
//! tags out of order, and the text is wanted anyway.

use std::borrow::Cow;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::EpubError;

/// Elements whose content is never visible text.
const HIDDEN: &[&str] = &[
    "head", "script", "style", "template", "noscript", "rp", "rt", "object", "iframe",
];

/// Elements that begin and end a paragraph.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

const HEADINGS: &[&str] = &["h1", "h2", "h3", "h4", "h5", "h6"];

/// The visible text of one content document.
pub(crate) struct Extracted {
    /// Paragraphs separated by a blank line, lines within one by `\n`.
    pub(crate) text: String,
    /// The first heading's text, a fallback chapter title.
    pub(crate) heading: Option<String>,
    /// The root element's `xml:lang` or `lang`.
    pub(crate) lang: Option<String>,
}

/// Extracts the visible text: hidden elements dropped, block elements turned into
/// paragraph breaks, `<br>` into line breaks, entities decoded, whitespace collapsed.
pub(crate) fn xhtml_to_text(entry: &str, source: &str) -> Result<Extracted, EpubError> {
    let mut reader = lenient_reader(source);
    let mut out = TextBuilder::default();
    let mut lang = None;
    // The hidden element being skipped and how deep it is nested in itself.
    let mut hidden: Option<(String, usize)> = None;
    let mut heading: Option<String> = None;
    let mut capture: Option<(String, TextBuilder)> = None;
    loop {
        let event = reader.read_event().map_err(|err| EpubError::Xml {
            entry: entry.to_owned(),
            reason: err.to_string(),
        })?;
        if let Some((name, depth)) = hidden.as_mut() {
            match &event {
                Event::Start(e) if local_name(e) == *name => *depth += 1,
                Event::End(e) if e.local_name().as_ref().eq_ignore_ascii_case(name) => {
                    *depth -= 1;
                    if *depth == 0 {
                        hidden = None;
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(e) => {
                let name = local_name(&e);
                if name == "html" {
                    lang = lang_of(&e);
                }
                if HIDDEN.contains(&name.as_str()) {
                    hidden = Some((name, 1));
                    continue;
                }
                out.element_boundary(&name);
                if heading.is_none() && capture.is_none() && HEADINGS.contains(&name.as_str()) {
                    capture = Some((name, TextBuilder::default()));
                } else if let Some((_, captured)) = capture.as_mut() {
                    captured.element_boundary(&name);
                }
            }
            Event::Empty(e) => {
                let name = local_name(&e);
                if name == "html" {
                    lang = lang_of(&e);
                }
                out.element_boundary(&name);
                if let Some((_, captured)) = capture.as_mut() {
                    captured.element_boundary(&name);
                }
            }
            Event::End(e) => {
                let name = e.local_name().as_ref().to_ascii_lowercase();
                out.element_boundary(&name);
                if let Some((open, mut captured)) = capture.take() {
                    if open == name {
                        // A title is one line, even when the heading breaks it.
                        let line = captured
                            .finish()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        heading = Some(line).filter(|h| !h.is_empty());
                    } else {
                        captured.element_boundary(&name);
                        capture = Some((open, captured));
                    }
                }
            }
            Event::Text(t) => push_text(&mut out, &mut capture, &t.xml10_content()),
            Event::CData(t) => push_text(&mut out, &mut capture, &t.xml10_content()),
            Event::GeneralRef(r) => push_text(&mut out, &mut capture, &resolve_reference(&r)),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(Extracted {
        text: out.finish(),
        heading,
        lang,
    })
}

fn push_text(out: &mut TextBuilder, capture: &mut Option<(String, TextBuilder)>, text: &str) {
    out.push(text);
    if let Some((_, captured)) = capture.as_mut() {
        captured.push(text);
    }
}

/// A reader that tolerates what HTML tolerates: unmatched end tags, bare `&`.
pub(crate) fn lenient_reader(source: &str) -> Reader<&[u8]> {
    let mut reader = Reader::from_str(source);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    reader
}

/// The element's local name (no prefix), lower-cased as HTML names are.
pub(crate) fn local_name(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_ascii_lowercase()
}

/// An attribute's value by local name (`epub:type` matches "type"), entities decoded.
pub(crate) fn attribute(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.html_attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref().eq_ignore_ascii_case(local))
        .map(|a| attribute_value(&a))
}

fn attribute_value(attr: &Attribute<'_>) -> String {
    attr.normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_named)
        .map(Cow::into_owned)
        .unwrap_or_else(|_| attr.value.clone().into_owned())
}

fn lang_of(e: &BytesStart<'_>) -> Option<String> {
    attribute(e, "lang")
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// Decodes `&name;` and `&#N;`; an unknown name stays as written.
pub(crate) fn resolve_reference(r: &BytesRef<'_>) -> Cow<'static, str> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Cow::Owned(c.to_string());
    }
    let name = r.xml10_content();
    match resolve_named(&name) {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(format!("&{name};")),
    }
}

fn resolve_named(name: &str) -> Option<&'static str> {
    quick_xml::escape::resolve_html5_entity(name)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Break {
    #[default]
    None,
    Space,
    Line,
    Paragraph,
}

/// Collapses whitespace as it goes: a break is only written when text follows it,
/// so the result has no leading, trailing or doubled whitespace.
#[derive(Default)]
pub(crate) struct TextBuilder {
    out: String,
    pending: Break,
}

impl TextBuilder {
    pub(crate) fn push(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                self.pending = self.pending.max(Break::Space);
                continue;
            }
            if !self.out.is_empty() {
                match self.pending {
                    Break::None => {}
                    Break::Space => self.out.push(' '),
                    Break::Line => self.out.push('\n'),
                    Break::Paragraph => self.out.push_str("\n\n"),
                }
            }
            self.pending = Break::None;
            self.out.push(c);
        }
    }

    fn element_boundary(&mut self, name: &str) {
        if name == "br" {
            self.pending = self.pending.max(Break::Line);
        } else if BLOCKS.contains(&name) {
            self.pending = Break::Paragraph;
        }
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Words in the text: runs of letters and digits, which apostrophes, hyphens and the
/// marks inside numbers do not break ("don't", "well-known" and "1,000" are one word
/// each, "lait—please" two, a lone dash none), plus one per CJK character, since
/// those scripts do not separate words with spaces.
pub fn count_words(text: &str) -> usize {
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        if is_cjk(c) {
            count += 1;
            in_word = false;
        } else if c.is_alphanumeric() {
            if !in_word {
                count += 1;
                in_word = true;
            }
        } else if !matches!(c, '\'' | '\u{2019}' | '-' | '\u{2010}' | '.' | ',') {
            in_word = false;
        }
    }
    count
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // hiragana, katakana
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xF900..=0xFAFF      // compatibility ideographs
        | 0x20000..=0x2FA1F) // supplementary ideographs
}

/// Decodes a document's bytes: UTF-16 when it says so with a byte order mark, UTF-8
/// otherwise, with invalid sequences replaced rather than refused. Valid UTF-8 is
/// taken over without a copy, so a large entry is not held twice.
pub(crate) fn decode(bytes: Vec<u8>) -> String {
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => {
            let mut text = String::from_utf8(bytes)
                .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            text
        }
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(source: &str) -> String {
        xhtml_to_text("t.xhtml", source).unwrap().text
    }

    #[test]
    fn blocks_become_paragraphs_and_whitespace_collapses() {
        let source = "<html><head><title>T</title><style>p{}</style></head><body>\n\
            <h1>One</h1>\n  <p>Hello,\n   <em>world</em>!</p><p>A&nbsp;b &amp; c&#x2014;d &#233;</p>\
            <div>x<br/>y</div><script>var a = 1;</script><p>  </p></body></html>";
        assert_eq!(
            text(source),
            "One\n\nHello, world!\n\nA b & c\u{2014}d \u{e9}\n\nx\ny"
        );
    }

    #[test]
    fn headings_and_lang_are_captured() {
        let out = xhtml_to_text(
            "t.xhtml",
            r#"<html xml:lang="fr"><body><p>x</p><h2>Chapitre <b>I</b></h2><h1>B</h1></body></html>"#,
        )
        .unwrap();
        assert_eq!(out.heading.as_deref(), Some("Chapitre I"));
        assert_eq!(out.lang.as_deref(), Some("fr"));
    }

    #[test]
    fn lenient_on_html_habits() {
        assert_eq!(text("<p>a & b &unknown; </i>c</p>"), "a & b &unknown; c");
        assert_eq!(
            text("<p>x</p><ruby>漢<rp>(</rp><rt>kan</rt></ruby>"),
            "x\n\n漢"
        );
    }

    #[test]
    fn byte_order_marks_choose_the_encoding() {
        assert_eq!(decode(vec![0xFF, 0xFE, b'h', 0, b'i', 0]), "hi");
        assert_eq!(decode(vec![0xFE, 0xFF, 0, b'h', 0, b'i']), "hi");
        assert_eq!(decode(b"\xEF\xBB\xBFhi".to_vec()), "hi");
        assert_eq!(decode(b"h\xFFi".to_vec()), "h\u{FFFD}i");
    }

    #[test]
    fn words_are_counted() {
        assert_eq!(count_words("Don't stop — well-known 1,000 words."), 5);
        assert_eq!(count_words("lait\u{2014}please, \u{201c}quoted\u{201d}"), 3);
        assert_eq!(count_words("我爱读书 ok"), 5);
        assert_eq!(count_words(""), 0);
    }
}
