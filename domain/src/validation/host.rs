//! Which hosts name this machine or a private network, read the way browsers and
//! resolvers read them.
//!
//! A host whose last label is a number is an IPv4 address to a browser (the URL
//! standard) and to `inet_aton`: `127.1`, `0x7f.1`, `0177.0.0.1`, `127.000.000.001`,
//! `10.1` and `2130706433` all mean an address, in one to four parts, each decimal, octal
//! (a leading `0`) or hexadecimal (`0x`), the last part filling the bytes left. So the
//! filter reads them the same way. A host that ends in a number but is not a valid
//! address (`1.2.3.4.5`, `256.1.1.1`) is no host at all to a browser:
//! [`is_invalid_numeric_host`] tells it apart, so each caller refuses it as malformed
//! rather than guessing whether it is internal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for a host that names this machine or a private network. A host that ends in a
/// number without being an address is not one ([`is_invalid_numeric_host`]).
#[must_use]
pub fn host_is_internal(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip_is_internal(ip);
    }
    if ends_in_a_number(&host) {
        return numeric_ipv4(&host).is_some_and(ipv4_is_internal);
    }
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
        || !host.contains('.')
}

/// True for a host that ends in a number but is no IPv4 address (`1.2.3.4.5`,
/// `256.1.1.1`): a browser refuses it, so it is malformed wherever a host is expected.
#[must_use]
pub fn is_invalid_numeric_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ends_in_a_number(&host) && host.parse::<IpAddr>().is_err() && numeric_ipv4(&host).is_none()
}

/// True for loopback, private, link-local, unspecified, CGNAT and unique-local addresses.
#[must_use]
pub fn ip_is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => ipv4_is_internal(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return ipv4_is_internal(v4);
            }
            ipv6_is_internal(v6)
        }
    }
}

fn ipv4_is_internal(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (64..128).contains(&b))
}

fn ipv6_is_internal(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback() || ip.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
}

/// The URL standard's "ends in a number": the last label is decimal digits, or `0x`
/// followed by hexadecimal digits (none counts).
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    match last.strip_prefix("0x") {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// `host` read as an IPv4 address of one to four numeric parts; `None` when it is not one.
fn numeric_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host.split('.').map(number).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|part| *part > 255) {
        return None;
    }
    // The last part fills the bytes the others left: 4 of them alone, 1 after three.
    let room = 8 * (4 - u32::try_from(leading.len()).ok()?);
    if *last >= 1_u64 << room {
        return None;
    }
    let address = leading.iter().enumerate().fold(*last, |address, (index, part)| {
        address | (part << (24 - 8 * u32::try_from(index).unwrap_or(0)))
    });
    u32::try_from(address).ok().map(Ipv4Addr::from)
}

/// One part: `0x` hexadecimal (empty is 0), a leading `0` octal, else decimal.
fn number(part: &str) -> Option<u64> {
    if let Some(hex) = part.strip_prefix("0x") {
        return if hex.is_empty() { Some(0) } else { parse_digits(hex, 16) };
    }
    if part.len() > 1
        && let Some(octal) = part.strip_prefix('0')
    {
        return parse_digits(octal, 8);
    }
    parse_digits(part, 10)
}

/// Digits of `radix` only (no sign), at most 2^32 (larger is never an address); `None`
/// for anything else.
fn parse_digits(digits: &str, radix: u32) -> Option<u64> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = u64::from_str_radix(digits, radix).ok()?;
    (value <= 1 << 32).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numeric_hosts_that_browsers_read_as_internal_addresses_are_internal() {
        for host in [
            "127.1",
            "0x7f.1",
            "0177.0.0.1",
            "127.000.000.001",
            "10.1",
            "192.168.1",
            "0xa9.254.169.254",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "0x7F.0.0.1",
            "0.0",
            "0x",
            "100.64.1",
        ] {
            assert!(host_is_internal(host), "{host}");
        }
    }

    #[test]
    fn a_host_that_ends_in_a_number_but_is_no_address_is_invalid() {
        for host in [
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256",
            "1.2.65536",
            "08.1.1.1",
            "+1.2.3.4",
            "4294967296",
            "example.0x",
            "a.1",
            "1.2.3.4.5.",
        ] {
            assert!(is_invalid_numeric_host(host), "{host}");
            assert!(!host_is_internal(host), "{host}: no host, so neither internal nor public");
        }
        for host in ["127.1", "8.8.8.8", "134744072", "::1", "example.com", "intranet", "123.example"] {
            assert!(!is_invalid_numeric_host(host), "{host}");
        }
    }

    #[test]
    fn numeric_public_addresses_and_names_pass() {
        for host in [
            "134744072",
            "0x8.0x8.0x8.0x8",
            "8.8.2056",
            "8.526344",
            "010.010.010.010",
            "123.example",
            "example.com",
        ] {
            assert!(!host_is_internal(host), "{host}");
        }
    }

    #[test]
    fn the_parts_fill_the_address_as_inet_aton_does() {
        let ip = |a, b, c, d| Some(Ipv4Addr::new(a, b, c, d));
        assert_eq!(numeric_ipv4("1.2.3.4"), ip(1, 2, 3, 4));
        assert_eq!(numeric_ipv4("1.2.772"), ip(1, 2, 3, 4), "772 = 3 * 256 + 4");
        assert_eq!(numeric_ipv4("1.131844"), ip(1, 2, 3, 4), "131844 = 2 * 65536 + 3 * 256 + 4");
        assert_eq!(numeric_ipv4("16909060"), ip(1, 2, 3, 4));
        assert_eq!(numeric_ipv4("0x1.0x2.0x3.0x4"), ip(1, 2, 3, 4));
        assert_eq!(numeric_ipv4("01.02.03.04"), ip(1, 2, 3, 4));
        assert_eq!(numeric_ipv4("4294967295"), ip(255, 255, 255, 255));
        assert_eq!(numeric_ipv4("1.16777215"), ip(1, 255, 255, 255));
        assert_eq!(numeric_ipv4("1.16777216"), None, "one past what three bytes hold");
        assert_eq!(numeric_ipv4("1.2.65535"), ip(1, 2, 255, 255));
        assert_eq!(numeric_ipv4("1.2.3.255"), ip(1, 2, 3, 255));
        assert_eq!(numeric_ipv4("255.255.255.255"), ip(255, 255, 255, 255));
        assert_eq!(numeric_ipv4("256.0.0.1"), None);
        assert_eq!(numeric_ipv4("09.1.1.1"), None, "9 is not an octal digit");
        assert_eq!(numeric_ipv4("0xg.1.1.1"), None);
        assert_eq!(numeric_ipv4(""), None);
        assert_eq!(numeric_ipv4("1..1"), None);
        assert_eq!(numeric_ipv4("1.2.3.4.0"), None, "five parts, even with room for the last");
    }

    proptest! {
        /// Every address written in dotted decimal, as one number, or in hexadecimal
        /// parts is read back as itself.
        #[test]
        fn every_spelling_of_an_address_is_read_back(bits in any::<u32>()) {
            let ip = Ipv4Addr::from(bits);
            let [a, b, c, d] = ip.octets();
            prop_assert_eq!(numeric_ipv4(&bits.to_string()), Some(ip));
            prop_assert_eq!(numeric_ipv4(&format!("{a}.{b}.{c}.{d}")), Some(ip));
            prop_assert_eq!(numeric_ipv4(&format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}")), Some(ip));
            prop_assert_eq!(numeric_ipv4(&format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}")), Some(ip));
            prop_assert_eq!(numeric_ipv4(&format!("{a}.{}", bits & 0x00ff_ffff)), Some(ip));
            prop_assert_eq!(host_is_internal(&bits.to_string()), ip_is_internal(IpAddr::V4(ip)));
        }
    }
}
