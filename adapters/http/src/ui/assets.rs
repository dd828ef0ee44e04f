//! The files of the web pages, embedded at build time from `adapters/http/ui/`: the
//! pages' own HTML, style and scripts, and the third-party scripts `scripts/vendor-ui.sh`
//! fetched from the npm registry at pinned versions (`ui/vendor/VERSIONS`).

/// One embedded file served under `P/ui/assets/`.
#[derive(Debug)]
pub struct Asset {
    /// Its name in the URL.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// A digest of its bytes (FNV-1a), computed at build time, for its `ETag`.
    digest: u64,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        Self { name, content_type, body, digest: fnv1a(body) }
    }

    /// Its entity tag: changes whenever its bytes do.
    #[must_use]
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.digest)
    }
}

/// FNV-1a over `bytes`: not a cryptographic digest, only a change detector.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut index = 0;
    while index < bytes.len() {
        hash ^= bytes[index] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        index += 1;
    }
    hash
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The chat page's HTML (`%PREFIX%` stands for the path prefix).
pub const CHAT_PAGE: &str = include_str!("../../ui/chat.html");
/// The conversations page's HTML.
pub const SESSIONS_PAGE: &str = include_str!("../../ui/sessions.html");
/// The admin dashboard's HTML.
pub const ADMIN_PAGE: &str = include_str!("../../ui/admin.html");
/// Every page, for the checks that apply to all.
#[cfg(test)]
pub const PAGES: [&str; 3] = [CHAT_PAGE, SESSIONS_PAGE, ADMIN_PAGE];

/// Every file under `P/ui/assets/`.
pub static ASSETS: &[Asset] = &[
    Asset::new("app.css", CSS, include_bytes!("../../ui/app.css")),
    Asset::new("icon.svg", "image/svg+xml", include_bytes!("../../ui/icon.svg")),
    Asset::new("common.js", JS, include_bytes!("../../ui/common.js")),
    Asset::new("pages.css", CSS, include_bytes!("../../ui/pages.css")),
    Asset::new("chat.js", JS, include_bytes!("../../ui/chat.js")),
    Asset::new("sessions.js", JS, include_bytes!("../../ui/sessions.js")),
    Asset::new("admin.js", JS, include_bytes!("../../ui/admin.js")),
    Asset::new("admin-assist.js", JS, include_bytes!("../../ui/admin-assist.js")),
    Asset::new("marked.js", JS, include_bytes!("../../ui/vendor/marked.js")),
    Asset::new("purify.js", JS, include_bytes!("../../ui/vendor/purify.js")),
];

/// The file named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_a_page_loads_is_embedded_and_names_are_unique() {
        for reference in PAGES.iter().flat_map(|page| page.split("assets/").skip(1)) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(find(name).is_some(), "the page loads {name}, which is not embedded");
        }
        let mut names: Vec<_> = ASSETS.iter().map(|asset| asset.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
    }

    #[test]
    fn the_etag_follows_the_bytes() {
        let one = Asset::new("a", JS, b"one");
        assert_eq!(one.etag(), Asset::new("b", CSS, b"one").etag());
        assert_ne!(one.etag(), Asset::new("a", JS, b"two").etag());
        assert!(one.etag().starts_with('"') && one.etag().ends_with('"'));
    }
}
