//! Pictures on the wire: the base64 text of an [`InlineImage`] (standard alphabet,
//! padded), written straight into the request body or into a `data:` URL, with no copy
//! of the bytes beyond the encoding itself.

use std::fmt;

use base64::Engine;
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use chatbox_application::ports::InlineImage;
use serde::{Serialize, Serializer};

/// `data:<media type>;base64,<data>`, built in one allocation of its final size.
#[must_use]
pub fn data_url(image: &InlineImage) -> String {
    const MIDDLE: &str = ";base64,";
    let encoded = base64::encoded_len(image.data.len(), true).unwrap_or_default();
    let mut url = String::with_capacity("data:".len() + image.media_type.len() + MIDDLE.len() + encoded);
    url.push_str("data:");
    url.push_str(image.media_type);
    url.push_str(MIDDLE);
    STANDARD.encode_string(&image.data, &mut url);
    url
}

/// Serialises as the base64 text of the bytes, encoded while the body is written.
#[derive(Clone, Copy)]
pub struct Base64<'a>(pub &'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

impl fmt::Debug for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn data_urls_are_standard_padded_base64_of_exactly_their_size() {
        let image = InlineImage { media_type: "image/png", data: Bytes::from_static(b"\xfb\xff\x00ab") };
        let url = data_url(&image);
        assert_eq!(url, "data:image/png;base64,+/8AYWI=");
        assert_eq!(url.capacity(), url.len(), "one allocation of the final size");
    }

    #[test]
    fn the_body_encoding_matches_the_url_encoding() {
        let json = serde_json::to_string(&Base64(b"\xfb\xff\x00ab")).expect("json");
        assert_eq!(json, "\"+/8AYWI=\"");
        assert_eq!(serde_json::to_string(&Base64(b"")).expect("json"), "\"\"");
    }
}
