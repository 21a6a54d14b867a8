//! `META-INF/encryption.xml`: font obfuscation is allowed, anything else encrypted is DRM.
//! Publishers obfuscate embedded fonts (IDPF or Adobe algorithm) to satisfy font
//! licences; the text stays readable, so such books import.

use super::package::{parse_xml, Package};
use super::path::resolve_from_root;
use super::EpubError;

pub(crate) const ENCRYPTION: &str = "META-INF/encryption.xml";

const FONT_EXTENSIONS: &[&str] = &["otf", "ttf", "ttc", "woff", "woff2", "eot"];

/// Fails with [`EpubError::DrmProtected`] when a resource other than a font is encrypted.
pub(crate) fn check(text: &str, package: &Package) -> Result<(), EpubError> {
    let doc = parse_xml(ENCRYPTION, text)?;
    let references = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "CipherReference")
        .filter_map(|n| n.attribute("URI"));
    for uri in references {
        let Some(path) = resolve_from_root(ENCRYPTION, uri)? else {
            continue;
        };
        if !is_font(&path, package) {
            return Err(EpubError::DrmProtected { entry: path });
        }
    }
    Ok(())
}

/// A font by its manifest media type or by its extension (fonts are often declared
/// as `application/octet-stream`).
fn is_font(path: &str, package: &Package) -> bool {
    let declared_font = package
        .manifest
        .values()
        .filter(|item| item.path.as_deref() == Some(path))
        .any(|item| item.media_type.contains("font") || item.media_type.contains("opentype"));
    let font_extension = path
        .rsplit_once('.')
        .is_some_and(|(_, ext)| FONT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    declared_font || font_extension
}
