//! Commons image URLs and the streamed, size-capped, atomic image download.

use std::path::{Path, PathBuf};

use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use tokio::io::AsyncWriteExt;

use super::client::WikidataClient;
use super::error::DownloadError;
use super::http::retry_after;

/// A downloaded image, renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// `{dir}/{name}.{extension of the content type}`.
    pub path: PathBuf,
    /// The media type the server gave, without parameters, e.g. `image/jpeg`.
    pub content_type: String,
    pub bytes: u64,
}

/// `{commons_base_url}/wiki/Special:FilePath/{file}`: Commons redirects it to the
/// file itself. Spaces become underscores, as in Commons' own titles, and every
/// byte outside the URL-unreserved set is percent-encoded (Commons' own URLs encode
/// `(`, `)`, `"` and `,` too).
pub fn commons_file_url(commons_base_url: &str, file: &str) -> String {
    let file = file.trim();
    let file = file.strip_prefix("File:").unwrap_or(file);
    let mut encoded = String::with_capacity(file.len());
    for byte in file.replace(' ', "_").bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!(
        "{}/wiki/Special:FilePath/{encoded}",
        commons_base_url.trim_end_matches('/')
    )
}

impl WikidataClient {
    /// Downloads the image at `url` into `dir` as `{name}.{ext}`, the extension
    /// following the Content-Type. `name` (e.g. the author's id) is the only part of
    /// the file name not chosen here, and must be letters, digits, `-` or `_`; the
    /// URL never names the file, so it cannot reach outside `dir`.
    ///
    /// A Content-Type other than `image/*`, or a body over `max_bytes` (declared or
    /// counted), is refused permanently. The body is streamed into a temporary file
    /// in `dir` and renamed into place only when whole; on any failure, or if the
    /// download is cancelled, the temporary file is removed, so `dir` keeps nothing.
    pub async fn download_image(
        &self,
        url: &str,
        dir: &Path,
        name: &str,
        max_bytes: u64,
    ) -> Result<Downloaded, DownloadError> {
        if !valid_name(name) {
            return Err(DownloadError::InvalidName {
                name: name.to_owned(),
            });
        }
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| DownloadError::InvalidUrl {
                url: url.to_owned(),
            })?;
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                DownloadError::Timeout {
                    url: url.to_owned(),
                }
            } else {
                DownloadError::Transport {
                    url: url.to_owned(),
                    source,
                }
            }
        };

        let mut response = self.http.get(parsed).send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(DownloadError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                retry_after: retry_after(response.headers()),
            });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let Some(media_type) = content_type.as_deref().and_then(image_media_type) else {
            return Err(DownloadError::NotAnImage {
                url: url.to_owned(),
                content_type: content_type.unwrap_or_else(|| "missing".to_owned()),
            });
        };
        let too_large = |declared| DownloadError::TooLarge {
            url: url.to_owned(),
            max_bytes,
            declared,
        };
        if let Some(length) = response.content_length().filter(|&n| n > max_bytes) {
            return Err(too_large(Some(length)));
        }

        let io = |source| DownloadError::Io {
            dir: dir.to_owned(),
            source,
        };
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        let temp = TempFile(dir.join(format!(".{name}.{}.part", uuid::Uuid::new_v4())));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.0)
            .await
            .map_err(io)?;
        let mut bytes: u64 = 0;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            bytes += chunk.len() as u64;
            if bytes > max_bytes {
                return Err(too_large(None));
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        drop(file);

        let ext = extension(&media_type);
        let path = dir.join(format!("{name}.{ext}"));
        tokio::fs::rename(&temp.0, &path).await.map_err(io)?;
        temp.keep();
        // An earlier image of another type would otherwise stay beside the new one.
        for stale in EXTENSIONS.iter().filter(|e| **e != ext) {
            let _ = tokio::fs::remove_file(dir.join(format!("{name}.{stale}"))).await;
        }
        Ok(Downloaded {
            path,
            content_type: media_type,
            bytes,
        })
    }
}

/// A file in progress, removed when dropped unless kept: covers every early return
/// and a cancelled download alike.
struct TempFile(PathBuf);

impl TempFile {
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Nothing to do if it was never created or is already gone.
        let _ = std::fs::remove_file(&self.0);
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `image/png; q=1` → `image/png`; `None` unless the type is `image/<something>`.
fn image_media_type(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let subtype = essence.strip_prefix("image/")?;
    let valid = !subtype.is_empty()
        && subtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_'));
    valid.then_some(essence)
}

/// Every extension [`extension`] gives.
const EXTENSIONS: [&str; 11] = [
    "jpg", "png", "gif", "webp", "svg", "tif", "bmp", "avif", "heic", "ico", "img",
];

fn extension(media_type: &str) -> &'static str {
    match media_type {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "image/tiff" => "tif",
        "image/bmp" => "bmp",
        "image/avif" => "avif",
        "image/heic" => "heic",
        "image/x-icon" | "image/vnd.microsoft.icon" => "ico",
        _ => "img",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commons_urls_use_underscores_and_percent_encoding() {
        assert_eq!(
            commons_file_url("https://commons.wikimedia.org/", "Douglas adams portrait cropped.jpg"),
            "https://commons.wikimedia.org/wiki/Special:FilePath/Douglas_adams_portrait_cropped.jpg"
        );
        assert_eq!(
            commons_file_url("https://commons.wikimedia.org", "KBS \"The Producers\" press conference, 11 May 2015 10.jpg"),
            "https://commons.wikimedia.org/wiki/Special:FilePath/KBS_%22The_Producers%22_press_conference%2C_11_May_2015_10.jpg"
        );
        assert_eq!(
            commons_file_url("https://c", "Lu Xun (魯迅).jpg"),
            "https://c/wiki/Special:FilePath/Lu_Xun_%28%E9%AD%AF%E8%BF%85%29.jpg"
        );
        assert_eq!(
            commons_file_url("https://c", "../a/b?.png"),
            "https://c/wiki/Special:FilePath/..%2Fa%2Fb%3F.png"
        );
    }

    #[test]
    fn only_image_media_types_pass() {
        assert_eq!(
            image_media_type("image/jpeg").as_deref(),
            Some("image/jpeg")
        );
        assert_eq!(
            image_media_type("Image/PNG; charset=binary").as_deref(),
            Some("image/png")
        );
        assert_eq!(
            image_media_type("image/svg+xml").as_deref(),
            Some("image/svg+xml")
        );
        for bad in [
            "text/html",
            "image/",
            "application/octet-stream",
            "image/../x",
            "",
            "imagex/png",
        ] {
            assert_eq!(image_media_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_extension_is_listed_for_clean_up() {
        for media_type in [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "image/svg+xml",
            "image/tiff",
            "image/bmp",
            "image/avif",
            "image/heic",
            "image/x-icon",
            "image/x-other",
        ] {
            assert!(EXTENSIONS.contains(&extension(media_type)), "{media_type}");
        }
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        assert!(valid_name("0190b5f2-6c1e-7a3b-9d2e-123456789abc"));
        for bad in [
            "",
            "..",
            "a/b",
            "a\\b",
            ".hidden",
            "a b",
            "ä",
            &"x".repeat(129),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
