//! What a file's first bytes show it to be, as a media type the domain's list of
//! accepted types (`chatbox_domain::upload::ACCEPTED`) can name.
//!
//! The magic-number table is the `infer` crate's. A few of its answers are renamed:
//! browsers record voice notes as WebM or MP4 containers, which the table calls video
//! (`video/webm`, `video/mp4`); Opus in Ogg is Ogg audio; M4A is MP4 audio. The rename
//! only decides how the file is labelled and served (as a download), never that it runs.

/// How many of the first bytes are read before deciding: enough for every format taken
/// (an Office document is recognised by the names of its first zip entries).
pub(super) const SNIFF_BYTES: usize = 8_192;

/// The media type `head` (a file's first bytes) shows, if any.
pub(super) fn sniff(head: &[u8]) -> Option<&'static str> {
    let found = infer::get(head)?.mime_type();
    Some(match found {
        "video/webm" => "audio/webm",
        "video/mp4" | "audio/m4a" => "audio/mp4",
        "audio/opus" => "audio/ogg",
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use chatbox_domain::upload::accept;

    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";
    const PDF: &[u8] = b"%PDF-1.7\n";
    const WEBM_HEADER: &[u8] = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm";

    /// The start of a WebM recording (the table looks at more than its header).
    fn webm() -> Vec<u8> {
        let mut recording = WEBM_HEADER.to_vec();
        recording.resize(512, 0);
        recording
    }

    #[test]
    fn the_content_decides_the_type() {
        assert_eq!(sniff(PNG), Some("image/png"));
        assert_eq!(sniff(JPEG), Some("image/jpeg"));
        assert_eq!(sniff(PDF), Some("application/pdf"));
        assert_eq!(sniff(&webm()), Some("audio/webm"), "a browser's voice note");
        assert_eq!(sniff(b"#!/bin/sh\nrm -rf /\n"), Some("text/x-shellscript"));
        assert!(accept(sniff(b"#!/bin/sh\nrm -rf /\n")).is_err(), "a script is not taken");
        assert!(accept(sniff(b"<html><script>alert(1)</script>")).is_err(), "a page is not taken");
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn every_sniffed_type_of_a_taken_format_is_accepted_and_html_is_not() {
        for head in [PNG, JPEG, PDF, &webm()] {
            assert!(accept(sniff(head)).is_ok(), "{:?}", sniff(head));
        }
        assert!(accept(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>")).is_err());
        assert!(accept(sniff(b"GIF89a\x01\0\x01\0")).is_err(), "GIF waits for its metadata stripper");
    }
}
