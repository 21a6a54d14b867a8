//! The EPUB reader against books written by the tests themselves: valid EPUB 2 and 3,
//! malformed files, and hostile archives (zip slip, reference traversal, oversized
//! entries, lying headers, zip bombs, paths out of the EPUB directory).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use processors::epub::{check_relative_path, read_epub, resolve_path, Book, EpubError, EpubLimits};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---------------------------------------------------------------------------------
// Building books

/// A scratch EPUB directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("conveyor-epub-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A ZIP with a stored `mimetype` first, as OCF wants, then `files` deflated.
fn epub(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in files {
        zip.start_file(*name, deflated).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn container(opf_path: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="{opf_path}" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#
    )
}

/// A one-chapter EPUB 3 package whose chapter lives at `href` (relative to `OPS/`).
fn small_opf(href: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">small-book</dc:identifier>
    <dc:title>Small</dc:title>
    <dc:language>en</dc:language>
  </metadata>
  <manifest><item id="c1" href="{href}" media-type="application/xhtml+xml"/></manifest>
  <spine><itemref idref="c1"/></spine>
</package>"#
    )
}

fn xhtml(body: &str) -> String {
    format!(r#"<html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>"#)
}

/// A valid one-chapter book whose chapter is `chapter` (bytes of any kind).
fn small_book(chapter: &[u8]) -> Vec<u8> {
    let container = container("OPS/package.opf");
    let opf = small_opf("c1.xhtml");
    epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("OPS/package.opf", opf.as_bytes()),
        ("OPS/c1.xhtml", chapter),
    ])
}

fn read_bytes(bytes: &[u8], limits: EpubLimits) -> Result<Book, EpubError> {
    let dir = TempDir::new();
    dir.write("book.epub", bytes);
    read_epub(dir.path(), "book.epub", limits)
}

fn read(bytes: &[u8]) -> Result<Book, EpubError> {
    read_bytes(bytes, EpubLimits::default())
}

/// Rewrites an entry's declared uncompressed size in both its local and its central
/// header, the way a hostile archive lies about what it holds.
fn lie_about_size(zip: &mut [u8], name: &str, declared: u32) {
    let name = name.as_bytes();
    let mut patched = 0;
    for at in 0..zip.len().saturating_sub(46) {
        let (size_at, name_len_at, name_at) = match zip[at..at + 4] {
            [0x50, 0x4b, 0x03, 0x04] => (at + 22, at + 26, at + 30),
            [0x50, 0x4b, 0x01, 0x02] => (at + 24, at + 28, at + 46),
            _ => continue,
        };
        let name_len = u16::from_le_bytes([zip[name_len_at], zip[name_len_at + 1]]) as usize;
        if zip.get(name_at..name_at + name_len) == Some(name) {
            zip[size_at..size_at + 4].copy_from_slice(&declared.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "both headers of the entry are patched");
}

/// Text that deflate cannot shrink much: words from a small generator.
fn prose(bytes: usize) -> String {
    let words = [
        "river", "stone", "lantern", "quiet", "harbour", "thread", "amber", "owl",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(words[(state % 8) as usize]);
        out.push_str(&format!("{} ", state % 1000));
    }
    out
}

// ---------------------------------------------------------------------------------
// Valid books

const EPUB3_OPF: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="isbn">urn:isbn:9780000000002</dc:identifier>
    <dc:identifier id="uid">urn:uuid:0c8b3b5e-5d0c-4a8e-9f7e-1d2c3b4a5f60</dc:identifier>
    <dc:title id="sub">A Subtitle</dc:title>
    <meta refines="#sub" property="title-type">subtitle</meta>
    <dc:title id="main">  The   Test Book </dc:title>
    <meta refines="#main" property="title-type">main</meta>
    <dc:creator id="ed">Ed Itor</dc:creator>
    <meta refines="#ed" property="role" scheme="marc:relators">edt</meta>
    <dc:creator id="au">Jane Q. Writer</dc:creator>
    <meta refines="#au" property="role" scheme="marc:relators">aut</meta>
    <meta refines="#au" property="file-as">Writer, Jane Q.</meta>
    <dc:language>en-GB</dc:language>
    <meta property="dcterms:modified">2024-01-01T00:00:00Z</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="cover" href="text/cover.xhtml" media-type="application/xhtml+xml"/>
    <item id="c1" href="text/chapter%201.xhtml" media-type="application/xhtml+xml"/>
    <item id="plate" href="text/plate.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/>
    <item id="c3" href="../Shared/c3.xhtml" media-type="application/xhtml+xml"/>
    <item id="css" href="style.css" media-type="text/css"/>
    <item id="audio" href="https://example.org/a.mp3" media-type="audio/mpeg"/>
  </manifest>
  <spine>
    <itemref idref="cover" linear="no"/>
    <itemref idref="nav"/>
    <itemref idref="c1"/>
    <itemref idref="plate"/>
    <itemref idref="c2"/>
    <itemref idref="c3"/>
  </spine>
</package>"##;

const EPUB3_NAV: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head><body>
<nav epub:type="toc"><h1>Contents</h1><ol>
  <li><a href="text/chapter%201.xhtml">Chapter One: Arrival</a></li>
  <li><a href="text/c2.xhtml#start">Chapter <em>Two</em></a></li>
</ol></nav>
<nav epub:type="landmarks"><ol><li><a href="../Shared/c3.xhtml">Landmark</a></li></ol></nav>
</body></html>"#;

const EPUB3_C1: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en-GB">
<head><title>Ch 1</title><style>p { color: red }</style></head>
<body><h1>One</h1>
<p>It was a  bright
   cold day.</p>
<p>The clocks&#160;were striking &#x2014; thirteen.</p></body></html>"#;

const EPUB3_C2: &str = r#"<html xmlns="http://www.w3.org/1999/xhtml">
<head><script>var hidden = "head script";</script></head>
<body><section><h2 id="start">Two</h2>
<p>Caf&eacute;&nbsp;au lait&mdash;please.<!-- a comment --></p>
<script type="text/javascript">document.write("body script")</script>
<ul><li>first</li><li>second</li></ul>
<p>line one<br/>line two</p></section></body></html>"#;

fn epub3_book() -> Vec<u8> {
    let container = container("OEBPS/content.opf");
    let cover = xhtml("<p>COVER PAGE</p>");
    let plate = xhtml(r#"<div><img src="plate.jpg" alt="A plate"/></div>"#);
    let c3 = xhtml("<h1>Three<br/>The End</h1><p>Fin.</p>");
    epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("OEBPS/content.opf", EPUB3_OPF.as_bytes()),
        ("OEBPS/nav.xhtml", EPUB3_NAV.as_bytes()),
        ("OEBPS/text/cover.xhtml", cover.as_bytes()),
        ("OEBPS/text/chapter 1.xhtml", EPUB3_C1.as_bytes()),
        ("OEBPS/text/plate.xhtml", plate.as_bytes()),
        ("OEBPS/text/c2.xhtml", EPUB3_C2.as_bytes()),
        ("Shared/c3.xhtml", c3.as_bytes()),
    ])
}

#[test]
fn epub3_with_nav_reads_metadata_and_chapters_in_spine_order() {
    let book = read(&epub3_book()).unwrap();
    assert_eq!(
        book.identifier.as_deref(),
        Some("urn:uuid:0c8b3b5e-5d0c-4a8e-9f7e-1d2c3b4a5f60"),
        "the identifier named by unique-identifier, not the first"
    );
    assert_eq!(
        book.title, "The Test Book",
        "the main title, whitespace collapsed"
    );
    assert_eq!(
        book.author.as_deref(),
        Some("Jane Q. Writer"),
        "the aut, not the editor"
    );
    assert_eq!(book.author_file_as.as_deref(), Some("Writer, Jane Q."));
    assert_eq!(book.language.as_deref(), Some("en-GB"));

    let summary: Vec<_> = book
        .chapters
        .iter()
        .map(|c| (c.index, c.title.as_deref(), c.word_count))
        .collect();
    assert_eq!(
        summary,
        [
            (0, Some("Chapter One: Arrival"), 12),
            (1, Some("Chapter Two"), 11),
            (2, Some("Three The End"), 4),
        ],
        "the non-linear cover, the nav document and the text-less plate are skipped; \
         titles from the toc nav, else the first heading"
    );
    assert_eq!(
        book.chapters[0].text,
        "One\n\nIt was a bright cold day.\n\nThe clocks were striking \u{2014} thirteen."
    );
    assert_eq!(
        book.chapters[1].text,
        "Two\n\nCaf\u{e9} au lait\u{2014}please.\n\nfirst\n\nsecond\n\nline one\nline two",
        "HTML entities decoded, scripts and comments dropped, blocks and <br> kept"
    );
    assert_eq!(book.chapters[2].text, "Three\nThe End\n\nFin.");
    assert_eq!(book.chapter_count(), 3);
    assert_eq!(book.word_count, 27);
    assert!(!book.chapters.iter().any(|c| c.text.contains("COVER")));
}

const EPUB2_OPF: &str = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>
<package xmlns=\"http://www.idpf.org/2007/opf\" version=\"2.0\" unique-identifier=\"BookId\">
 <metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:opf=\"http://www.idpf.org/2007/opf\">
   <dc:title>Le Livre</dc:title>
   <dc:creator opf:role=\"ill\">Ill Ustrator</dc:creator>
   <dc:creator opf:role=\"aut\" opf:file-as=\"Martin, Fran\u{e7}ois\">Fran\u{e7}ois Martin</dc:creator>
   <dc:identifier opf:scheme=\"ISBN\">9780000000002</dc:identifier>
   <dc:identifier id=\"BookId\" opf:scheme=\"UUID\">urn:uuid:5e2d1c4b-0000-4000-8000-000000000001</dc:identifier>
   <dc:language></dc:language>
   <dc:subject/>
   <meta name=\"cover\" content=\"cover-image\"/>
 </metadata>
 <manifest>
   <item id=\"ncx\" href=\"toc.ncx\" media-type=\"application/x-dtbncx+xml\"/>
   <item id=\"ch1\" href=\"Text/ch1.html\" media-type=\"application/xhtml+xml\"/>
   <item id=\"ch2\" href=\"Text/ch2.html\" media-type=\"application/xhtml+xml\"/>
 </manifest>
 <spine toc=\"ncx\"><itemref idref=\"ch1\"/><itemref idref=\"ch2\"/></spine>
 <guide><reference type=\"text\" title=\"Start\" href=\"Text/ch1.html\"/></guide>
</package>";

const EPUB2_NCX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" "http://www.daisy.org/z3986/2005/ncx-2005-1.dtd">
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">
  <head><meta name="dtb:uid" content="urn:uuid:5e2d1c4b-0000-4000-8000-000000000001"/></head>
  <docTitle><text>Le Livre</text></docTitle>
  <navMap>
    <navPoint id="p1" playOrder="1"><navLabel><text>Premier chapitre</text></navLabel><content src="Text/ch1.html"/></navPoint>
    <navPoint id="p2" playOrder="2"><navLabel><text>Deuxi&#232;me chapitre</text></navLabel><content src="Text/ch2.html#debut"/></navPoint>
  </navMap>
</ncx>"#;

const EPUB2_CH1: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="fr"><head><title>Un</title></head>
<body><div class="chapter"><p>Il &#233;tait une fois&#8230;</p></div></body></html>"#;

fn epub2_book() -> Vec<u8> {
    let container = container("content.opf");
    let ch2 = xhtml(r#"<h2 id="debut">Deux</h2><p>Fin de l&#8217;histoire.</p>"#);
    epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("content.opf", EPUB2_OPF.as_bytes()),
        ("toc.ncx", EPUB2_NCX.as_bytes()),
        ("Text/ch1.html", EPUB2_CH1.as_bytes()),
        ("Text/ch2.html", ch2.as_bytes()),
    ])
}

#[test]
fn epub2_with_ncx_reads_opf_attributes_and_ncx_titles() {
    let book = read(&epub2_book()).unwrap();
    assert_eq!(
        book.identifier.as_deref(),
        Some("urn:uuid:5e2d1c4b-0000-4000-8000-000000000001")
    );
    assert_eq!(book.title, "Le Livre");
    assert_eq!(
        book.author.as_deref(),
        Some("Fran\u{e7}ois Martin"),
        "opf:role=aut wins"
    );
    assert_eq!(
        book.author_file_as.as_deref(),
        Some("Martin, Fran\u{e7}ois")
    );
    assert_eq!(
        book.language.as_deref(),
        Some("fr"),
        "an empty dc:language falls back to the first chapter's xml:lang"
    );
    let summary: Vec<_> = book
        .chapters
        .iter()
        .map(|c| (c.index, c.title.as_deref(), c.text.as_str(), c.word_count))
        .collect();
    assert_eq!(
        summary,
        [
            (
                0,
                Some("Premier chapitre"),
                "Il \u{e9}tait une fois\u{2026}",
                4
            ),
            (
                1,
                Some("Deuxi\u{e8}me chapitre"),
                "Deux\n\nFin de l\u{2019}histoire.",
                4
            ),
        ]
    );
    assert_eq!(book.word_count, 8);
}

#[test]
fn missing_metadata_falls_back_to_file_name_and_package_language() {
    let opf = r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" xml:lang="de">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>  </dc:title></metadata>
  <manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest>
  <spine><itemref idref="c1"/></spine>
</package>"#;
    let container = container("package.opf");
    let chapter = xhtml("<p>Hallo Welt</p>");
    let bytes = epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("package.opf", opf.as_bytes()),
        ("c1.xhtml", chapter.as_bytes()),
    ]);
    let dir = TempDir::new();
    dir.write("shelf/Unknown Book.epub", &bytes);
    let book = read_epub(dir.path(), "shelf/Unknown Book.epub", EpubLimits::default()).unwrap();
    assert_eq!(book.title, "Unknown Book");
    assert_eq!(book.identifier, None);
    assert_eq!(book.author, None);
    assert_eq!(book.author_file_as, None);
    assert_eq!(book.language.as_deref(), Some("de"));
    assert_eq!(book.chapters[0].title, None);
    assert_eq!(book.word_count, 2);
}

const ENCRYPTED_OPF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:fonts</dc:identifier><dc:title>Fonts</dc:title>
  </metadata>
  <manifest>
    <item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>
    <item id="f1" href="fonts/Serif.otf" media-type="font/otf"/>
    <item id="f2" href="fonts/Sans%20Bold.ttf" media-type="application/octet-stream"/>
  </manifest>
  <spine><itemref idref="c1"/></spine>
</package>"#;

fn encryption_xml(uris: &[&str], algorithm: &str) -> String {
    let data: String = uris
        .iter()
        .map(|uri| {
            format!(
                r#"<enc:EncryptedData><enc:EncryptionMethod Algorithm="{algorithm}"/>
                <enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
  xmlns:enc="http://www.w3.org/2001/04/xmlenc#">{data}</encryption>"#
    )
}

fn encrypted_book(encryption: &str) -> Vec<u8> {
    let container = container("OPS/package.opf");
    let chapter = xhtml("<p>Readable text</p>");
    epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("META-INF/encryption.xml", encryption.as_bytes()),
        ("OPS/package.opf", ENCRYPTED_OPF.as_bytes()),
        ("OPS/c1.xhtml", chapter.as_bytes()),
        ("OPS/fonts/Serif.otf", b"obfuscated font bytes"),
        ("OPS/fonts/Sans Bold.ttf", b"obfuscated font bytes"),
    ])
}

#[test]
fn obfuscated_fonts_are_not_drm() {
    let encryption = encryption_xml(
        &["OPS/fonts/Serif.otf", "OPS/fonts/Sans%20Bold.ttf"],
        "http://www.idpf.org/2008/embedding",
    );
    let book = read(&encrypted_book(&encryption)).unwrap();
    assert_eq!(book.title, "Fonts");
    assert_eq!(book.chapters[0].text, "Readable text");
}

#[test]
fn encrypted_content_documents_are_drm() {
    let encryption = encryption_xml(
        &["OPS/fonts/Serif.otf", "OPS/c1.xhtml"],
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    );
    let err = read(&encrypted_book(&encryption)).unwrap_err();
    assert!(
        matches!(&err, EpubError::DrmProtected { entry } if entry == "OPS/c1.xhtml"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "book is DRM-protected: OPS/c1.xhtml is encrypted"
    );
    assert!(!err.is_retryable());
}

// ---------------------------------------------------------------------------------
// Malformed books

#[test]
fn not_a_zip_is_refused() {
    for bytes in [
        &b""[..],
        b"\xff\xd8\xff\xe0 a JPEG, not a book",
        b"PK\x03\x04 truncated",
    ] {
        let err = read(bytes).unwrap_err();
        assert!(matches!(err, EpubError::NotZip { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("not an EPUB: not a readable ZIP archive"));
    }
}

#[test]
fn archive_without_container_is_refused() {
    let bytes = epub(&[("word/document.xml", b"<w:document/>")]);
    let err = read(&bytes).unwrap_err();
    assert!(matches!(err, EpubError::MissingContainer), "{err:?}");
    assert_eq!(
        err.to_string(),
        "not an EPUB: META-INF/container.xml is missing"
    );
}

#[test]
fn container_pointing_at_a_missing_package_is_refused() {
    let container = container("OEBPS/content.opf");
    let bytes = epub(&[("META-INF/container.xml", container.as_bytes())]);
    let err = read(&bytes).unwrap_err();
    assert!(
        matches!(&err, EpubError::MissingPackage { path } if path == "OEBPS/content.opf"),
        "{err:?}"
    );
}

#[test]
fn container_without_a_package_rootfile_is_refused() {
    // A misspelled media type leaves no usable rootfile, as epubcheck also rules.
    let container = container("content.opf").replace("oebps-package", "oepbs-package");
    let opf = small_opf("c1.xhtml");
    let bytes = epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("content.opf", opf.as_bytes()),
    ]);
    assert!(matches!(read(&bytes), Err(EpubError::NoRootfile)));
}

#[test]
fn unparsable_xml_is_refused_naming_the_entry() {
    let broken_container = epub(&[("META-INF/container.xml", b"<container><rootfiles>")]);
    let err = read(&broken_container).unwrap_err();
    assert!(
        matches!(&err, EpubError::Xml { entry, .. } if entry == "META-INF/container.xml"),
        "{err:?}"
    );

    let container = container("OPS/package.opf");
    let opf = small_opf("c1.xhtml").replace("</manifest>", "</manifest");
    let chapter = xhtml("<p>x</p>");
    let broken_opf = epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("OPS/package.opf", opf.as_bytes()),
        ("OPS/c1.xhtml", chapter.as_bytes()),
    ]);
    let err = read(&broken_opf).unwrap_err();
    assert!(
        matches!(&err, EpubError::Xml { entry, .. } if entry == "OPS/package.opf"),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("OPS/package.opf is not well-formed XML"));

    let broken_chapter = small_book(b"<html><body><p>unclosed <b");
    let err = read(&broken_chapter).unwrap_err();
    assert!(
        matches!(&err, EpubError::Xml { entry, .. } if entry == "OPS/c1.xhtml"),
        "{err:?}"
    );
}

#[test]
fn missing_spine_item_is_refused() {
    let container = container("OPS/package.opf");
    let opf = small_opf("c1.xhtml");
    let bytes = epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("OPS/package.opf", opf.as_bytes()),
    ]);
    let err = read(&bytes).unwrap_err();
    assert!(
        matches!(&err, EpubError::MissingSpineItem { idref, path } if idref == "c1" && path == "OPS/c1.xhtml"),
        "{err:?}"
    );
}

#[test]
fn spine_item_missing_from_the_manifest_is_refused() {
    let container = container("OPS/package.opf");
    let opf = small_opf("c1.xhtml").replace(r#"idref="c1""#, r#"idref="ghost""#);
    let bytes = epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("OPS/package.opf", opf.as_bytes()),
    ]);
    let err = read(&bytes).unwrap_err();
    assert!(matches!(err, EpubError::InvalidPackage { .. }), "{err:?}");
    assert!(err.to_string().contains("\"ghost\""), "{err}");
}

#[test]
fn damaged_archives_fail_without_panicking() {
    let good = epub2_book();
    for cut in (0..good.len()).step_by(97) {
        let _ = read(&good[..cut]);
    }
    for at in (0..good.len()).step_by(41) {
        let mut damaged = good.clone();
        damaged[at] ^= 0x5a;
        let _ = read(&damaged);
    }
}

// ---------------------------------------------------------------------------------
// Hostile books

#[test]
fn entry_names_that_leave_the_archive_are_refused() {
    for name in [
        "../../../../tmp/evil.txt",
        "..\\..\\Temp\\evil.txt",
        "/etc/evil",
        "OPS/../../evil",
    ] {
        let container = container("OPS/package.opf");
        let bytes = epub(&[
            ("META-INF/container.xml", container.as_bytes()),
            ("good.txt", b"fine"),
            (name, b"evil"),
        ]);
        let err = read(&bytes).unwrap_err();
        assert!(
            matches!(&err, EpubError::UnsafeEntryName { name: n } if n == name),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn references_that_leave_the_archive_are_refused() {
    for href in [
        "../../../../EPUB/c1.xhtml",
        "EPUB/../../../../EPUB/c1.xhtml",
        "/etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
    ] {
        let container = container("OPS/package.opf");
        let opf = small_opf(href);
        let chapter = xhtml("<p>x</p>");
        let bytes = epub(&[
            ("META-INF/container.xml", container.as_bytes()),
            ("OPS/package.opf", opf.as_bytes()),
            ("OPS/c1.xhtml", chapter.as_bytes()),
        ]);
        let err = read(&bytes).unwrap_err();
        assert!(
            matches!(&err, EpubError::UnsafeHref { href: h, entry } if h == href && entry == "OPS/package.opf"),
            "{href}: {err:?}"
        );
    }
    let container = container("../content.opf");
    let bytes = epub(&[("META-INF/container.xml", container.as_bytes())]);
    assert!(matches!(read(&bytes), Err(EpubError::UnsafeHref { .. })));
}

fn small_limits() -> EpubLimits {
    EpubLimits {
        max_entry_bytes: 100_000,
        max_total_bytes: 1_000_000,
        max_ratio: 100,
    }
}

#[test]
fn entry_over_the_size_limit_is_refused() {
    let chapter = xhtml(&format!("<p>{}</p>", prose(150_000)));
    let err = read_bytes(&small_book(chapter.as_bytes()), small_limits()).unwrap_err();
    assert!(
        matches!(&err, EpubError::EntryTooLarge { entry, limit: 100_000 } if entry == "OPS/c1.xhtml"),
        "{err:?}"
    );
}

/// A lying entry is refused once it yields more than it declared: the ZIP reader stops
/// it (an unreadable entry), and behind that the reader's own counts would (unit-tested
/// in `archive.rs`). Either way nothing past the declared size or the limit is kept.
fn refused_for_lying(err: &EpubError, name: &str) -> bool {
    match err {
        EpubError::CorruptEntry { entry, reason } => {
            entry == name && reason.contains("declared uncompressed size")
        }
        EpubError::EntryTooLarge { entry, .. } | EpubError::CompressionRatio { entry, .. } => {
            entry == name
        }
        EpubError::ArchiveTooLarge { .. } => true,
        _ => false,
    }
}

#[test]
fn entry_lying_about_its_size_is_refused_by_what_it_yields() {
    let chapter = xhtml(&format!("<p>{}</p>", prose(150_000)));
    let mut bytes = small_book(chapter.as_bytes());
    lie_about_size(&mut bytes, "OPS/c1.xhtml", 1_000);
    let err = read_bytes(&bytes, small_limits()).unwrap_err();
    assert!(refused_for_lying(&err, "OPS/c1.xhtml"), "{err:?}");
}

/// 50 MB of zeros deflate to about 50 KB: a ratio near 1000. Built once per run.
fn zip_bomb() -> Vec<u8> {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(build_zip_bomb).clone()
}

fn build_zip_bomb() -> Vec<u8> {
    let container = container("OPS/package.opf");
    let opf = small_opf("c1.xhtml");
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in [
        ("META-INF/container.xml", container.as_bytes()),
        ("OPS/package.opf", opf.as_bytes()),
    ] {
        zip.start_file(name, deflated).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.start_file("OPS/c1.xhtml", deflated).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..50 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn zip_bomb_is_refused_by_its_declared_ratio() {
    let bomb = zip_bomb();
    assert!(
        bomb.len() < 200_000,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let err = read(&bomb).unwrap_err();
    assert!(
        matches!(&err, EpubError::CompressionRatio { entry, limit: 100 } if entry == "OPS/c1.xhtml"),
        "{err:?}"
    );
}

#[test]
fn zip_bomb_lying_about_its_size_is_refused_while_reading() {
    let mut bomb = zip_bomb();
    lie_about_size(&mut bomb, "OPS/c1.xhtml", 1_000);
    let err = read(&bomb).unwrap_err();
    assert!(refused_for_lying(&err, "OPS/c1.xhtml"), "{err:?}");
}

fn three_chapter_book(chapter_bytes: usize) -> Vec<u8> {
    let container = container("package.opf");
    let opf = small_opf("c1.xhtml")
        .replace(
            "</manifest>",
            r#"<item id="c2" href="c2.xhtml" media-type="application/xhtml+xml"/>
               <item id="c3" href="c3.xhtml" media-type="application/xhtml+xml"/></manifest>"#,
        )
        .replace(
            "</spine>",
            r#"<itemref idref="c2"/><itemref idref="c3"/></spine>"#,
        );
    let chapter = xhtml(&format!("<p>{}</p>", prose(chapter_bytes)));
    epub(&[
        ("META-INF/container.xml", container.as_bytes()),
        ("package.opf", opf.as_bytes()),
        ("c1.xhtml", chapter.as_bytes()),
        ("c2.xhtml", chapter.as_bytes()),
        ("c3.xhtml", chapter.as_bytes()),
    ])
}

#[test]
fn archive_over_the_total_limit_is_refused() {
    let limits = EpubLimits {
        max_entry_bytes: 100_000,
        max_total_bytes: 200_000,
        max_ratio: 100,
    };
    let bytes = three_chapter_book(80_000);
    assert_eq!(
        read_bytes(&bytes, EpubLimits::default())
            .unwrap()
            .chapter_count(),
        3
    );
    let err = read_bytes(&bytes, limits).unwrap_err();
    assert!(
        matches!(err, EpubError::ArchiveTooLarge { limit: 200_000 }),
        "{err:?}"
    );

    // Declaring small sizes does not help: what comes out is checked, not the claim.
    let mut lying = bytes;
    for name in ["c1.xhtml", "c2.xhtml", "c3.xhtml"] {
        lie_about_size(&mut lying, name, 1_000);
    }
    let err = read_bytes(&lying, limits).unwrap_err();
    assert!(refused_for_lying(&err, "c1.xhtml"), "{err:?}");
}

// ---------------------------------------------------------------------------------
// Paths under the EPUB directory

#[test]
fn resolve_path_stays_inside_the_epub_dir() {
    let dir = TempDir::new();
    dir.write("library/book.epub", b"x");
    let root = dir.path().canonicalize().unwrap();
    assert_eq!(
        resolve_path(dir.path(), "library/book.epub").unwrap(),
        root.join("library/book.epub")
    );

    for path in [
        "../book.epub",
        "library/../../x.epub",
        "library\\..\\..\\x.epub",
        "",
        "  ",
    ] {
        let err = resolve_path(dir.path(), path).unwrap_err();
        assert!(
            matches!(err, EpubError::InvalidPath { .. }),
            "{path:?}: {err:?}"
        );
        assert!(check_relative_path(path).is_err(), "{path:?}");
    }
    let absolute = root.join("library/book.epub");
    let err = resolve_path(dir.path(), absolute.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, EpubError::InvalidPath { .. }), "{err:?}");
    assert!(check_relative_path("library/book.epub").is_ok());

    let err = resolve_path(dir.path(), "library/missing.epub").unwrap_err();
    assert!(matches!(err, EpubError::NotFound { .. }), "{err:?}");
    let err = resolve_path(dir.path(), "library").unwrap_err();
    assert!(matches!(err, EpubError::NotAFile { .. }), "{err:?}");
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_epub_dir_are_refused() {
    let outside = TempDir::new();
    outside.write("secret.epub", &epub2_book());
    let dir = TempDir::new();
    dir.write("inside.epub", &epub2_book());
    std::os::unix::fs::symlink(
        outside.path().join("secret.epub"),
        dir.path().join("link.epub"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked-dir")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("inside.epub"),
        dir.path().join("alias.epub"),
    )
    .unwrap();

    for path in ["link.epub", "linked-dir/secret.epub"] {
        let err = resolve_path(dir.path(), path).unwrap_err();
        assert!(
            matches!(err, EpubError::OutsideDir { .. }),
            "{path}: {err:?}"
        );
        let err = read_epub(dir.path(), path, EpubLimits::default()).unwrap_err();
        assert!(
            matches!(err, EpubError::OutsideDir { .. }),
            "{path}: {err:?}"
        );
    }
    assert_eq!(
        read_epub(dir.path(), "alias.epub", EpubLimits::default())
            .unwrap()
            .title,
        "Le Livre",
        "a link that stays inside is followed"
    );
}

#[test]
fn defaults_match_the_storage_configuration() {
    assert_eq!(
        EpubLimits::default(),
        EpubLimits {
            max_entry_bytes: 67_108_864,
            max_total_bytes: 536_870_912,
            max_ratio: 100,
        }
    );
}
