//! The validation rules at their documented limits, host filter included.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use proptest::prelude::*;

#[test]
fn file_urls_must_be_public_https() {
    assert!(parse_file_url("https://cdn.example.com/a.png?x=1").is_ok());
    assert_eq!(parse_file_url("http://cdn.example.com/a.png"), Err(InvalidValue::NotHttps));
    for private in [
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://192.168.0.1:8443/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://localhost/x",
        "https://printer.local/x",
        "https://metadata/x",
    ] {
        assert_eq!(parse_file_url(private), Err(InvalidValue::PrivateHost), "{private}");
    }
    assert!(parse_file_url("https://user@host.example.com/").is_err());
    assert!(parse_file_url(&format!("https://a.com/{}", "x".repeat(2048))).is_err());
}

#[test]
fn metadata_limits() {
    let mut metadata = Metadata::new();
    metadata.insert("k".into(), "v".repeat(1000));
    assert!(check_metadata(&metadata).is_ok());
    metadata.insert("k2".into(), "v".repeat(1001));
    assert!(check_metadata(&metadata).is_err());
    let many: Metadata = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
    assert_eq!(check_metadata(&many), Err(InvalidValue::TooManyKeys { max: 32 }));
}

#[test]
fn timestamps_more_than_a_minute_ahead_are_refused() {
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
    assert!(check_client_timestamp(now + chrono::Duration::seconds(60), now).is_ok());
    assert!(check_client_timestamp(now - chrono::Duration::days(3), now).is_ok());
    assert_eq!(check_client_timestamp(now + chrono::Duration::seconds(61), now), Err(InvalidValue::InFuture));
}

#[test]
fn content_of_exactly_the_limit_is_kept_and_one_more_is_refused() {
    let exact = MessageContent::parse(&"日".repeat(10), 10).expect("10 characters fit a limit of 10");
    assert_eq!(exact.as_str(), "日日日日日日日日日日");
    assert_eq!(exact.into_inner(), "日日日日日日日日日日");
    assert_eq!(
        MessageContent::parse(&"日".repeat(11), 10),
        Err(InvalidValue::TooManyCharacters { field: "content", max: 10 })
    );
    let cleaned = MessageContent::parse("a\0b", 10).expect("valid");
    assert_eq!(cleaned.as_str(), "ab");
}

#[test]
fn an_optional_caption_is_kept_empty_or_refused_over_the_limit() {
    assert_eq!(MessageContent::parse_optional("my photo", 8), Ok("my photo".to_owned()));
    assert_eq!(MessageContent::parse_optional("", 8), Ok(String::new()));
    assert_eq!(MessageContent::parse_optional("   ", 8), Ok(String::new()));
    assert_eq!(
        MessageContent::parse_optional("my photos", 8),
        Err(InvalidValue::TooManyCharacters { field: "content", max: 8 })
    );
}

#[test]
fn file_ids_are_trimmed_and_at_most_255_bytes() {
    assert_eq!(parse_file_id("  f-1  "), Ok("f-1".to_owned()));
    assert_eq!(parse_file_id(&"a".repeat(255)), Ok("a".repeat(255)));
    assert_eq!(parse_file_id(&"a".repeat(256)), Err(InvalidValue::TooLong { field: "file_id", max: 255 }));
    assert_eq!(parse_file_id("   "), Err(InvalidValue::Empty { field: "file_id" }));
    assert_eq!(parse_file_id("f\u{7}1"), Err(InvalidValue::Malformed { field: "file_id" }));
}

#[test]
fn file_urls_of_2048_bytes_pass_and_of_2049_are_refused() {
    let head = "https://cdn.example.com/";
    let exact = format!("{head}{}", "x".repeat(2048 - head.len()));
    assert_eq!(exact.len(), 2048);
    assert_eq!(parse_file_url(&exact), Ok(exact.clone()));
    let over = format!("{exact}x");
    assert_eq!(parse_file_url(&over), Err(InvalidValue::TooLong { field: "file_url", max: 2048 }));
}

#[test]
fn file_urls_with_a_space_or_a_control_character_are_malformed() {
    let malformed = Err(InvalidValue::Malformed { field: "file_url" });
    assert_eq!(parse_file_url("https://cdn.example.com/a b.png"), malformed);
    assert_eq!(parse_file_url("https://cdn.example.com/a\u{1}b.png"), malformed);
    assert_eq!(parse_file_url("https://cdn.example.com/a\u{7f}b.png"), malformed);
    assert_eq!(parse_file_url("https:///x"), malformed);
    assert_eq!(
        parse_file_url("HTTPS://cdn.example.com/a.png"),
        Ok("HTTPS://cdn.example.com/a.png".to_owned())
    );
}

#[test]
fn internal_host_names_are_refused() {
    for host in [
        "localhost",
        "LOCALHOST.",
        "app.localhost",
        "printer.local",
        "vault.corp.internal",
        "metadata",
        "intranet",
    ] {
        assert!(host_is_internal(host), "{host}");
        assert_eq!(parse_file_url(&format!("https://{host}/x")), Err(InvalidValue::PrivateHost), "{host}");
    }
    for host in
        ["cdn.example.com", "example.com.", "localhost.example.com", "local.example", "internal.example.org"]
    {
        assert!(!host_is_internal(host), "{host}");
    }
}

#[test]
fn internal_ipv4_literals_are_refused_and_public_ones_pass() {
    for ip in [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "255.255.255.255",
        "100.64.0.0",
        "100.64.0.1",
        "100.100.100.100",
        "100.127.255.255",
    ] {
        assert!(host_is_internal(ip), "{ip}");
        assert_eq!(parse_file_url(&format!("https://{ip}:8443/x")), Err(InvalidValue::PrivateHost), "{ip}");
    }
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "99.64.0.1",
        "101.100.0.1",
        "172.15.255.255",
        "172.32.0.0",
        "192.169.0.1",
    ] {
        assert!(!host_is_internal(ip), "{ip}");
        assert_eq!(parse_file_url(&format!("https://{ip}/x")), Ok(format!("https://{ip}/x")), "{ip}");
    }
}

#[test]
fn internal_ipv6_literals_are_refused_and_public_ones_pass() {
    for ip in [
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fdff:ffff::1",
        "fe80::1",
        "febf:ffff::1",
        "::ffff:10.0.0.1",
        "::ffff:192.168.0.1",
        "::ffff:127.0.0.1",
        "::ffff:100.64.0.1",
    ] {
        assert!(host_is_internal(ip), "{ip}");
        assert_eq!(parse_file_url(&format!("https://[{ip}]:443/x")), Err(InvalidValue::PrivateHost), "{ip}");
    }
    for ip in ["2001:4860::8888", "2606:4700::1111", "fbff:ffff::1", "fec0::1", "::ffff:8.8.8.8", "200::1"] {
        assert!(!host_is_internal(ip), "{ip}");
        assert_eq!(parse_file_url(&format!("https://[{ip}]/x")), Ok(format!("https://[{ip}]/x")), "{ip}");
    }
}

#[test]
fn metadata_key_and_count_limits_are_inclusive() {
    let exactly_32: Metadata = (0..32).map(|i| (format!("k{i}"), String::new())).collect();
    assert_eq!(check_metadata(&exactly_32), Ok(()));
    let key_error = Err(InvalidValue::TooLong { field: "metadata key", max: 64 });
    let with_key = |key: String| Metadata::from([(key, "v".to_owned())]);
    assert_eq!(check_metadata(&with_key("k".repeat(64))), Ok(()));
    assert_eq!(check_metadata(&with_key("k".repeat(65))), key_error);
    assert_eq!(check_metadata(&with_key(String::new())), key_error);
    let value_error = Err(InvalidValue::TooLong { field: "metadata value", max: 1000 });
    assert_eq!(check_metadata(&Metadata::from([("k".to_owned(), "v".repeat(1001))])), value_error);
}

proptest! {
    #[test]
    fn file_id_length_rule(len in 1usize..400) {
        prop_assert_eq!(parse_file_id(&"a".repeat(len)).is_ok(), len <= 255);
    }

    #[test]
    fn metadata_key_length_rule(len in 0usize..200) {
        let metadata = Metadata::from([("k".repeat(len), "v".to_owned())]);
        prop_assert_eq!(check_metadata(&metadata).is_ok(), (1..=64).contains(&len));
    }

    #[test]
    fn metadata_value_length_rule(len in 0usize..2_000) {
        let metadata = Metadata::from([("k".to_owned(), "v".repeat(len))]);
        prop_assert_eq!(check_metadata(&metadata).is_ok(), len <= 1000);
    }

    #[test]
    fn metadata_key_count_rule(count in 0usize..100) {
        let metadata: Metadata = (0..count).map(|i| (format!("k{i}"), String::new())).collect();
        prop_assert_eq!(check_metadata(&metadata).is_ok(), count <= 32);
    }

    #[test]
    fn cgnat_range_is_exactly_100_64_to_100_127(a in 0u8..=255, b in 0u8..=255, c in 0u8..=255, d in 0u8..=255) {
        // Only the second octet decides inside 100.0.0.0/8; outside it, a public first
        // octet keeps the address public whatever b is.
        prop_assume!(![0, 10, 127, 169, 172, 192, 255].contains(&a));
        let ip = Ipv4Addr::new(a, b, c, d);
        let expected = a == 100 && (64..=127).contains(&b);
        prop_assert_eq!(ip_is_internal(IpAddr::V4(ip)), expected, "{}", ip);
    }

    #[test]
    fn content_limit_counts_characters_not_bytes(len in 1usize..300, limit in 1usize..300) {
        let text = "日".repeat(len);
        let parsed = MessageContent::parse(&text, limit);
        prop_assert_eq!(parsed.is_ok(), len <= limit);
    }

    #[test]
    fn content_never_keeps_nul_bytes(text in "[a-z\u{0}]{1,50}") {
        if let Ok(content) = MessageContent::parse(&text, 100) {
            prop_assert!(!content.as_str().contains('\0'));
        }
    }

    #[test]
    fn blank_content_is_refused(spaces in "[ \t\n]{0,20}") {
        prop_assert_eq!(
            MessageContent::parse(&spaces, 100),
            Err(InvalidValue::Empty { field: "content" })
        );
    }
}

#[test]
fn a_file_url_whose_host_ends_in_a_number_but_is_no_address_is_malformed() {
    for url in ["https://1.2.3.4.5/x", "https://256.1.1.1/x", "https://example.0x/x"] {
        assert_eq!(parse_file_url(url), Err(InvalidValue::Malformed { field: "file_url" }), "{url}");
    }
    assert_eq!(parse_file_url("https://127.1/x"), Err(InvalidValue::PrivateHost));
    assert_eq!(parse_file_url("https://134744072/x"), Ok("https://134744072/x".to_owned()));
}
