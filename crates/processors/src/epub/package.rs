//! `META-INF/container.xml` and the OPF package document: metadata, manifest, spine.
//! Both must be well-formed XML; element names are matched by local name so books with
//! a missing or unusual namespace declaration still read.

use std::collections::HashMap;

use roxmltree::{Document, Node, ParsingOptions};

use super::path::{resolve_from_root, resolve_href};
use super::EpubError;

pub(crate) const CONTAINER: &str = "META-INF/container.xml";
const OPF_MEDIA_TYPE: &str = "application/oebps-package+xml";
const NCX_MEDIA_TYPE: &str = "application/x-dtbncx+xml";
const OPF_NS: &str = "http://www.idpf.org/2007/opf";
/// Package documents have hundreds of nodes; this bounds a hostile one.
const MAX_NODES: u32 = 1_000_000;

pub(crate) struct Package {
    pub(crate) identifier: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) author_file_as: Option<String>,
    pub(crate) language: Option<String>,
    /// Manifest id → item.
    pub(crate) manifest: HashMap<String, Item>,
    pub(crate) spine: Vec<SpineRef>,
    /// The EPUB 3 navigation document's entry name.
    pub(crate) nav: Option<String>,
    /// The EPUB 2 NCX's entry name.
    pub(crate) ncx: Option<String>,
}

pub(crate) struct Item {
    /// The entry name, or `None` for a resource outside the book (a URL).
    pub(crate) path: Option<String>,
    pub(crate) href: String,
    pub(crate) media_type: String,
}

pub(crate) struct SpineRef {
    pub(crate) idref: String,
    pub(crate) linear: bool,
}

/// Parses XML leniently enough for real books (a DTD is allowed, entity expansion is
/// bounded by the parser) and maps failures to [`EpubError::Xml`].
pub(crate) fn parse_xml<'a>(entry: &str, text: &'a str) -> Result<Document<'a>, EpubError> {
    let options = ParsingOptions {
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|err| EpubError::Xml {
        entry: entry.to_owned(),
        reason: err.to_string(),
    })
}

/// The entry name of the package document: the first rootfile of the OPF media type.
pub(crate) fn rootfile(container: &str) -> Result<String, EpubError> {
    let doc = parse_xml(CONTAINER, container)?;
    let full_path = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "rootfile")
        .find(|n| {
            n.attribute("media-type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(OPF_MEDIA_TYPE))
        })
        .and_then(|n| n.attribute("full-path"))
        .filter(|p| !p.trim().is_empty())
        .ok_or(EpubError::NoRootfile)?;
    resolve_from_root(CONTAINER, full_path)?.ok_or(EpubError::NoRootfile)
}

pub(crate) fn parse(entry: &str, text: &str) -> Result<Package, EpubError> {
    let doc = parse_xml(entry, text)?;
    let invalid = |reason: &str| EpubError::InvalidPackage {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let root = doc.root_element();
    if root.tag_name().name() != "package" {
        return Err(invalid("the root element is not <package>"));
    }
    let metadata = child(root, "metadata").ok_or_else(|| invalid("no <metadata>"))?;
    let manifest_node = child(root, "manifest").ok_or_else(|| invalid("no <manifest>"))?;
    let spine_node = child(root, "spine").ok_or_else(|| invalid("no <spine>"))?;

    let mut manifest = HashMap::new();
    let mut nav = None;
    for item in manifest_node
        .children()
        .filter(|n| n.tag_name().name() == "item")
    {
        let (Some(id), Some(href)) = (item.attribute("id"), item.attribute("href")) else {
            continue;
        };
        let path = resolve_href(entry, href)?;
        let properties = item.attribute("properties").unwrap_or_default();
        if nav.is_none() && properties.split_whitespace().any(|p| p == "nav") {
            nav.clone_from(&path);
        }
        let media_type = item.attribute("media-type").unwrap_or_default();
        manifest.entry(id.to_owned()).or_insert(Item {
            path,
            href: href.to_owned(),
            media_type: media_type.trim().to_ascii_lowercase(),
        });
    }

    let spine: Vec<SpineRef> = spine_node
        .children()
        .filter(|n| n.tag_name().name() == "itemref")
        .filter_map(|n| {
            Some(SpineRef {
                idref: n.attribute("idref")?.to_owned(),
                linear: n.attribute("linear").map(str::trim) != Some("no"),
            })
        })
        .collect();
    if spine.is_empty() {
        return Err(invalid("the spine lists no documents"));
    }
    if let Some(missing) = spine.iter().find(|r| !manifest.contains_key(&r.idref)) {
        return Err(invalid(&format!(
            "spine item {:?} is not in the manifest",
            missing.idref
        )));
    }
    let ncx = spine_node
        .attribute("toc")
        .and_then(|id| manifest.get(id))
        .or_else(|| manifest.values().find(|i| i.media_type == NCX_MEDIA_TYPE))
        .and_then(|i| i.path.clone());

    let meta = Metadata::read(metadata);
    let (author, author_file_as) = meta.author();
    Ok(Package {
        identifier: meta.identifier(root.attribute("unique-identifier")),
        title: meta.title(),
        author,
        author_file_as,
        language: meta.first("language").or_else(|| {
            root.attribute(("http://www.w3.org/XML/1998/namespace", "lang"))
                .and_then(clean)
        }),
        manifest,
        spine,
        nav,
        ncx,
    })
}

/// The Dublin Core elements and EPUB 3 refinements of `<metadata>`.
struct Metadata<'a, 'i> {
    /// Dublin Core elements in document order (nested `dc-metadata` of OPF 1 included).
    dc: Vec<Node<'a, 'i>>,
    /// Element id → (property, value) of the `<meta refines="#id">` that refine it.
    refinements: HashMap<&'a str, Vec<(&'a str, String)>>,
}

impl<'a, 'i> Metadata<'a, 'i> {
    fn read(metadata: Node<'a, 'i>) -> Self {
        let mut dc = Vec::new();
        let mut refinements: HashMap<&str, Vec<(&str, String)>> = HashMap::new();
        for node in metadata.descendants().filter(Node::is_element) {
            if node.tag_name().namespace() == Some("http://purl.org/dc/elements/1.1/") {
                dc.push(node);
            } else if node.tag_name().name() == "meta" {
                if let (Some(target), Some(property), Some(value)) = (
                    node.attribute("refines").and_then(|r| r.strip_prefix('#')),
                    node.attribute("property"),
                    text_of(node),
                ) {
                    refinements
                        .entry(target)
                        .or_default()
                        .push((property, value));
                }
            }
        }
        Metadata { dc, refinements }
    }

    fn elements(&self, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> + '_ {
        self.dc
            .iter()
            .copied()
            .filter(move |n| n.tag_name().name().eq_ignore_ascii_case(name))
    }

    fn first(&self, name: &'static str) -> Option<String> {
        self.elements(name).find_map(text_of)
    }

    fn refinement(&self, node: Node<'_, '_>, property: &str) -> Option<String> {
        let list = self.refinements.get(node.attribute("id")?)?;
        list.iter()
            .find(|(p, _)| *p == property)
            .map(|(_, v)| v.clone())
    }

    /// The `dc:identifier` named by `unique-identifier`, else the first one.
    fn identifier(&self, unique: Option<&str>) -> Option<String> {
        unique
            .and_then(|id| {
                self.elements("identifier")
                    .find(|n| n.attribute("id") == Some(id))
            })
            .and_then(text_of)
            .or_else(|| self.first("identifier"))
    }

    /// The title refined as the main one (EPUB 3), else the first.
    fn title(&self) -> Option<String> {
        self.elements("title")
            .find(|n| self.refinement(*n, "title-type").as_deref() == Some("main"))
            .and_then(text_of)
            .or_else(|| self.first("title"))
    }

    /// The first creator whose role is author (EPUB 3 refinement or EPUB 2 `opf:role`),
    /// else the first creator; with its `file-as` when given.
    fn author(&self) -> (Option<String>, Option<String>) {
        let creators: Vec<_> = self
            .elements("creator")
            .filter(|n| text_of(*n).is_some())
            .collect();
        let role = |n: Node<'_, '_>| {
            self.refinement(n, "role")
                .or_else(|| opf_attribute(n, "role").map(str::to_owned))
        };
        let Some(creator) = creators
            .iter()
            .find(|n| role(**n).is_some_and(|r| r.trim() == "aut"))
            .or(creators.first())
        else {
            return (None, None);
        };
        let file_as = self
            .refinement(*creator, "file-as")
            .or_else(|| opf_attribute(*creator, "file-as").and_then(clean));
        (text_of(*creator), file_as)
    }
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.tag_name().name() == name)
}

/// An OPF attribute such as `opf:role`, with or without its namespace.
fn opf_attribute<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attribute((OPF_NS, name))
        .or_else(|| node.attribute(name))
}

/// The element's text, whitespace collapsed; `None` when empty.
pub(crate) fn text_of(node: Node<'_, '_>) -> Option<String> {
    let text: String = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|n| n.text())
        .collect();
    clean(&text)
}

fn clean(text: &str) -> Option<String> {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!collapsed.is_empty()).then_some(collapsed)
}
