//! Chapter titles from the table of contents: the EPUB 3 navigation document or the
//! EPUB 2 NCX. Reading order comes from the spine, never from here, so a broken table
//! of contents costs only titles: parse errors end the walk with what was found.

use std::collections::HashMap;

use quick_xml::events::Event;

use super::path::resolve_href;
use super::text::{attribute, lenient_reader, local_name, resolve_reference, TextBuilder};

/// Document entry name → the label of the first table-of-contents link to it.
pub(crate) type Labels = HashMap<String, String>;

/// Links of the `<nav epub:type="toc">` (of every `<nav>` when none is marked).
pub(crate) fn nav_labels(entry: &str, source: &str) -> Labels {
    let mut reader = lenient_reader(source);
    let mut toc_links = Vec::new();
    let mut other_links = Vec::new();
    // Nesting depth inside a toc nav, and inside any nav.
    let (mut toc_depth, mut nav_depth) = (0usize, 0usize);
    let mut link: Option<(String, TextBuilder)> = None;
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(e) => match local_name(&e).as_str() {
                "nav" => {
                    nav_depth += 1;
                    let is_toc = attribute(&e, "type")
                        .is_some_and(|t| t.split_whitespace().any(|t| t == "toc"));
                    if toc_depth > 0 || is_toc {
                        toc_depth += 1;
                    }
                }
                "a" if nav_depth > 0 => {
                    link = attribute(&e, "href").map(|href| (href, TextBuilder::default()));
                }
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref().to_ascii_lowercase().as_str() {
                "nav" => {
                    nav_depth = nav_depth.saturating_sub(1);
                    toc_depth = toc_depth.saturating_sub(1);
                }
                "a" => {
                    if let Some((href, label)) = link.take() {
                        let target = if toc_depth > 0 {
                            &mut toc_links
                        } else {
                            &mut other_links
                        };
                        target.push((href, label.finish()));
                    }
                }
                _ => {}
            },
            Event::Text(t) => {
                if let Some((_, label)) = link.as_mut() {
                    label.push(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, label)) = link.as_mut() {
                    label.push(&resolve_reference(&r));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let links = if toc_links.is_empty() {
        other_links
    } else {
        toc_links
    };
    to_labels(entry, links)
}

/// `navPoint` labels of an NCX, each paired with its `content/@src`.
pub(crate) fn ncx_labels(entry: &str, source: &str) -> Labels {
    let mut reader = lenient_reader(source);
    let mut links = Vec::new();
    let mut last_label = String::new();
    let mut label: Option<TextBuilder> = None;
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(e) if local_name(&e) == "text" => label = Some(TextBuilder::default()),
            Event::Start(e) | Event::Empty(e) if local_name(&e) == "content" => {
                if let Some(src) = attribute(&e, "src") {
                    links.push((src, last_label.clone()));
                }
            }
            Event::End(e) if e.local_name().as_ref().eq_ignore_ascii_case("text") => {
                if let Some(text) = label.take() {
                    last_label = text.finish();
                }
            }
            Event::Text(t) => {
                if let Some(text) = label.as_mut() {
                    text.push(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(text) = label.as_mut() {
                    text.push(&resolve_reference(&r));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    to_labels(entry, links)
}

/// Keeps the first non-empty label per document; links that leave the book are ignored.
fn to_labels(entry: &str, links: Vec<(String, String)>) -> Labels {
    let mut labels = Labels::new();
    for (href, label) in links {
        if label.is_empty() {
            continue;
        }
        if let Ok(Some(path)) = resolve_href(entry, &href) {
            labels.entry(path).or_insert(label);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nav_toc_links_win_over_other_navs() {
        let source = r#"<html xmlns:epub="http://www.idpf.org/2007/ops"><body>
            <nav epub:type="landmarks"><ol><li><a href="text/c1.xhtml">Start</a></li></ol></nav>
            <nav epub:type="toc"><ol><li><a href="text/c1.xhtml#top">Chapter <i>One</i></a>
            <ol><li><a href="text/c1.xhtml#s2">Section</a></li></ol></li>
            <li><a href="text/c%202.xhtml">Two &amp; more</a></li></ol></nav></body></html>"#;
        let labels = nav_labels("OPS/nav.xhtml", source);
        assert_eq!(labels["OPS/text/c1.xhtml"], "Chapter One");
        assert_eq!(labels["OPS/text/c 2.xhtml"], "Two & more");
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn ncx_points_pair_label_and_source() {
        let source = r#"<ncx><navMap>
            <navPoint id="a" playOrder="1"><navLabel><text>Opening</text></navLabel><content src="c1.xhtml"/>
              <navPoint id="b" playOrder="2"><navLabel><text>Inner</text></navLabel><content src="c1.xhtml#x"/></navPoint>
            </navPoint>
            <navPoint id="c" playOrder="3"><navLabel><text>Second</text></navLabel><content src="c2.xhtml"/></navPoint>
            <navPoint id="d" playOrder="4"><navLabel><text>Escape</text></navLabel><content src="../../x.xhtml"/></navPoint>
            </navMap></ncx>"#;
        let labels = ncx_labels("OEBPS/toc.ncx", source);
        assert_eq!(labels["OEBPS/c1.xhtml"], "Opening");
        assert_eq!(labels["OEBPS/c2.xhtml"], "Second");
        assert_eq!(labels.len(), 2);
    }
}
