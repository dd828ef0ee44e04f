//! Property-based fuzzing of the token path: `JwtVerifier::verify` and
//! `JwtVerifier::socket_deadline`.
//!
//! Proves that every token gets its documented answer, never a panic: a correctly
//! signed token of an allowed algorithm whose claims are well formed, current and (when
//! configured) of the right issuer and audience yields exactly its user (`user_id`, else
//! `sub`; `name`, else the id; `roles`; `exp`), and every other token is
//! `AuthError::Invalid`. `socket_deadline` of every accepted user is computed without a
//! panic.
//!
//! Payloads are written by hand as text and signed here with HMAC, so they can hold
//! what no serializer writes: duplicated keys, numbers beyond `u64` and `i64`, negative
//! and fractional times, every JSON type for every claim. The expected answer comes
//! from an oracle written from the rules above, not from the verifier.
//!
//! `exp` values past what the system clock can represent (e.g. near `u64::MAX`) must
//! not panic; the documentation does not say whether such a token is accepted, so the
//! oracle allows either the right user or `Invalid` for them.

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;
#[path = "support/json_oracle.rs"]
mod json_oracle;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatbox_http::auth::{AuthError, AuthenticatedUser, JwtSettings, JwtVerifier};
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde::de::{Deserialize, Deserializer};
use serde_json::{Value, json};

const SECRET: &[u8] = b"fuzz-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hGcDaQ";
const OTHER_SECRET: &[u8] = b"another-secret-of-sufficient-length-0123";
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "chatbox";
/// 9999-12-31T23:59:59Z: every `exp` up to here must be accepted and kept exactly.
const LAST_ORDINARY_EXP: u64 = 253_402_300_799;
/// The claims either the verifier or the token library reads; a second value for any
/// of them makes the token ambiguous.
const READ_CLAIMS: [&str; 8] = ["user_id", "sub", "name", "roles", "exp", "nbf", "iss", "aud"];

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// A verifier configuration, as `JWT_*` variables can set it.
#[derive(Debug, Clone)]
struct Setup {
    algorithms: Vec<Algorithm>,
    require_exp: bool,
    leeway: u64,
    issuer: Option<&'static str>,
    audience: Option<&'static str>,
}

impl Setup {
    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            secret: chatbox_domain::Secret::new(String::from_utf8_lossy(SECRET)),
            algorithms: self.algorithms.clone(),
            require_exp: self.require_exp,
            issuer: self.issuer.map(str::to_owned),
            audience: self.audience.map(str::to_owned),
            leeway: Duration::from_secs(self.leeway),
        })
    }
}

/// A token as written: its header's `alg`, the key it is signed with, its payload text.
#[derive(Debug, Clone)]
struct Token {
    alg: &'static str,
    right_key: bool,
    payload: String,
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        _ => None,
    }
}

/// Base64url without padding (RFC 7515), written out so the test signs exactly the
/// bytes it chose.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

impl Token {
    /// `header.payload.signature`, signed with HMAC when the header names an HMAC
    /// algorithm (anything else gets a signature of the right shape that no key made).
    fn encode(&self) -> String {
        let header = json!({"alg": self.alg, "typ": "JWT"}).to_string();
        let message = format!("{}.{}", base64url(header.as_bytes()), base64url(self.payload.as_bytes()));
        let key = EncodingKey::from_secret(if self.right_key { SECRET } else { OTHER_SECRET });
        let signature = match algorithm(self.alg) {
            Some(alg) => jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).expect("sign"),
            None => base64url(&[7; 32]),
        };
        format!("{message}.{signature}")
    }
}

// ---------------------------------------------------------------------------------
// The oracle.
// ---------------------------------------------------------------------------------

/// The user a token should yield.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    id: String,
    name: String,
    roles: Vec<String>,
    exp: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Accepted as this user.
    User(Expected),
    /// Accepted as this user, or refused: an `exp` past what the clock represents.
    UserOrInvalid(Expected),
    Invalid,
}

/// A claim's value, or `Unreadable` for JSON that is well formed but holds a number
/// beyond `f64` (`1e400`): the token library reads such a claim as malformed and goes
/// on, so it only matters where the claim is checked.
#[derive(Debug, Clone)]
enum Claim {
    Value(Value),
    Unreadable,
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Value::deserialize(deserializer).map_or(Self::Unreadable, Self::Value))
    }
}

/// The values of the claims in `READ_CLAIMS`, duplicates kept; other keys skipped.
struct Claims(Vec<(String, Claim)>);

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        json_oracle::known_fields(deserializer, &READ_CLAIMS).map(Claims)
    }
}

/// A NumericDate for `nbf`: a non-negative integer, or a finite non-negative number
/// below 2^64 (rounded); `None` when malformed.
fn numeric_date(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    match value.as_f64() {
        Some(f) if value.is_f64() && f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
            Some(f.round() as u64)
        }
        _ => None,
    }
}

/// An optional text claim: absent or null is `None`; another type makes the token bad.
fn text_claim(claims: &BTreeMap<String, Value>, name: &str) -> Result<Option<String>, ()> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(()),
    }
}

/// `iss` or `aud` when configured: the expected text, or an array of texts holding it.
fn names(value: Option<&Value>, expected: &str) -> bool {
    match value {
        Some(Value::String(text)) => text == expected,
        Some(Value::Array(items)) => {
            items.iter().all(Value::is_string) && items.iter().any(|item| item == expected)
        }
        _ => false,
    }
}

/// Whether `exp` or `nbf` is too close to its limit for the answer not to depend on
/// the second the verifier reads the clock.
fn near(value: u64, limit: u64) -> bool {
    value.abs_diff(limit) <= 3
}

/// What the rules say `token` gets under `setup`, or `None` when the answer depends on
/// the exact second of the check.
fn oracle(setup: &Setup, token: &Token, now: u64) -> Option<Verdict> {
    let Some(alg) = algorithm(token.alg) else { return Some(Verdict::Invalid) };
    if !setup.algorithms.contains(&alg) || !token.right_key {
        return Some(Verdict::Invalid);
    }
    let Ok(Claims(pairs)) = serde_json::from_str::<Claims>(&token.payload) else {
        return Some(Verdict::Invalid);
    };
    let mut claims = BTreeMap::new();
    let mut unreadable = BTreeSet::new();
    for (name, claim) in pairs {
        let duplicate = match claim {
            Claim::Value(value) => claims.insert(name.clone(), value).is_some() || unreadable.contains(&name),
            Claim::Unreadable => !unreadable.insert(name.clone()) || claims.contains_key(&name),
        };
        if duplicate {
            return Some(Verdict::Invalid);
        }
    }
    // Unreadable is malformed wherever the claim is read; `iss` and `aud` are only read
    // when configured.
    let ignored_unless_configured = |name: &str| match name {
        "iss" => setup.issuer.is_none(),
        "aud" => setup.audience.is_none(),
        _ => false,
    };
    if unreadable.iter().any(|name| !ignored_unless_configured(name)) {
        return Some(Verdict::Invalid);
    }
    let exp = match claims.get("exp") {
        None if setup.require_exp => return Some(Verdict::Invalid),
        None => None,
        // A time the verifier keeps must be a whole non-negative number of seconds.
        Some(value) => match value.as_u64() {
            Some(exp) if near(exp, now - setup.leeway) => return None,
            Some(exp) if exp < now - setup.leeway => return Some(Verdict::Invalid),
            Some(exp) => Some(exp),
            None => return Some(Verdict::Invalid),
        },
    };
    if let Some(nbf) = claims.get("nbf") {
        match numeric_date(nbf) {
            Some(nbf) if near(nbf, now + setup.leeway) => return None,
            Some(nbf) if nbf > now + setup.leeway => return Some(Verdict::Invalid),
            Some(_) => {}
            None => return Some(Verdict::Invalid),
        }
    }
    if setup.issuer.is_some_and(|issuer| !names(claims.get("iss"), issuer))
        || setup.audience.is_some_and(|audience| !names(claims.get("aud"), audience))
    {
        return Some(Verdict::Invalid);
    }
    let (Ok(user_id), Ok(sub), Ok(name)) =
        (text_claim(&claims, "user_id"), text_claim(&claims, "sub"), text_claim(&claims, "name"))
    else {
        return Some(Verdict::Invalid);
    };
    let roles = match claims.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()
        }
        Some(_) => return Some(Verdict::Invalid),
    };
    let Some(id) = user_id.filter(|id| !id.is_empty()).or(sub) else { return Some(Verdict::Invalid) };
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Some(Verdict::Invalid);
    }
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| id.clone());
    let user = Expected { id, name, roles, exp };
    Some(if exp.is_some_and(|exp| exp > LAST_ORDINARY_EXP) {
        Verdict::UserOrInvalid(user)
    } else {
        Verdict::User(user)
    })
}

fn matches(expected: &Expected, user: &AuthenticatedUser) -> bool {
    user.id.as_str() == expected.id
        && user.name == expected.name
        && user.roles == expected.roles
        && match expected.exp {
            None => user.expires_at.is_none(),
            Some(exp) if exp <= LAST_ORDINARY_EXP => {
                user.expires_at == Some(UNIX_EPOCH + Duration::from_secs(exp))
            }
            // Past the ordinary range the exact instant is the implementation's choice;
            // it must still lie beyond the ordinary range.
            Some(_) => {
                user.expires_at.is_some_and(|at| at > UNIX_EPOCH + Duration::from_secs(LAST_ORDINARY_EXP))
            }
        }
}

/// The property: no panic, and the documented answer.
fn check(setup: &Setup, token: &Token) -> Result<(), TestCaseError> {
    let now = now_secs();
    let Some(verdict) = oracle(setup, token, now) else { return Ok(()) };
    let verifier = setup.verifier();
    let encoded = token.encode();
    let got = verifier.verify(&encoded);
    let fine = match (&verdict, &got) {
        (Verdict::Invalid, Err(AuthError::Invalid))
        | (Verdict::UserOrInvalid(_), Err(AuthError::Invalid)) => true,
        (Verdict::User(expected) | Verdict::UserOrInvalid(expected), Ok(user)) => matches(expected, user),
        _ => false,
    };
    prop_assert!(fine, "{setup:?}\n{token:?}\n expected {verdict:?}\n      got {got:?}");
    if let Ok(user) = got {
        let deadline = verifier.socket_deadline(&user);
        match (user.expires_at, deadline) {
            (None, None) => {}
            (Some(at), Some(deadline)) => {
                prop_assert!(deadline >= at, "the socket deadline {deadline:?} precedes the expiry {at:?}");
                if token_exp_is_ordinary(&user) {
                    prop_assert_eq!(deadline, at + Duration::from_secs(setup.leeway));
                }
            }
            (at, deadline) => prop_assert!(false, "expiry {at:?} but socket deadline {deadline:?}"),
        }
    }
    Ok(())
}

fn token_exp_is_ordinary(user: &AuthenticatedUser) -> bool {
    user.expires_at.is_some_and(|at| at <= UNIX_EPOCH + Duration::from_secs(LAST_ORDINARY_EXP))
}

// ---------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------

fn setup() -> impl Strategy<Value = Setup> {
    let all = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    let algorithms = prop_oneof![3 => Just(all.clone()), 1 => prop::sample::subsequence(all, 1..=3)];
    (
        algorithms,
        prop::bool::weighted(0.8),
        prop_oneof![Just(0u64), Just(30), Just(300)],
        prop::option::weighted(0.2, Just(ISSUER)),
        prop::option::weighted(0.2, Just(AUDIENCE)),
    )
        .prop_map(|(algorithms, require_exp, leeway, issuer, audience)| Setup {
            algorithms,
            require_exp,
            leeway,
            issuer,
            audience,
        })
}

/// Raw JSON of every type, with numbers beyond `u64` and `i64` and fractional ones.
fn raw_any() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => value.prop_map(|v| v.to_string()),
        1 => raw_big_number(),
    ]
    .boxed()
}

fn raw_big_number() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "18446744073709551615",
        "18446744073709551614",
        "18446744073709551616",
        "9223372036854775807",
        "9223372036854775808",
        "9223372036854775507",
        "-9223372036854775808",
        "-1",
        "-0",
        "0",
        "1e19",
        "1.8446744073709552e19",
        "1e400",
        "-1e400",
        "0.5",
        "123456789012345678901234567890",
    ])
    .prop_map(str::to_owned)
    .boxed()
}

/// A time claim: seconds from now (mostly), or extreme and malformed values.
fn raw_time(now: u64, future: bool) -> BoxedStrategy<String> {
    let offset = if future {
        prop_oneof![3 => 60i64..10_000_000, 1 => -400i64..400].boxed()
    } else {
        prop_oneof![3 => -10_000_000i64..-60, 1 => -400i64..400].boxed()
    };
    let relative = offset.prop_map(move |o| now.saturating_add_signed(o).to_string());
    let extreme = prop_oneof![
        Just(u64::MAX),
        (0u64..1000).prop_map(|k| u64::MAX - k),
        (0u64..1000).prop_map(|k| i64::MAX as u64 - k),
        (0u64..1000).prop_map(|k| i64::MAX as u64 + k),
        Just(LAST_ORDINARY_EXP),
        Just(LAST_ORDINARY_EXP + 1),
        any::<u64>(),
    ]
    .prop_map(|n| n.to_string());
    prop_oneof![
        10 => relative,
        2 => extreme,
        1 => (now - 100_000..now + 100_000).prop_map(|n| format!("{n}.5")),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_text(valid: BoxedStrategy<String>) -> BoxedStrategy<String> {
    let odd = prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        Just("a".repeat(255)),
        Just("a".repeat(256)),
        Just("é".repeat(128)),
        Just("bad\nid".to_owned()),
        Just("nul\u{0}".to_owned()),
    ];
    prop_oneof![
        10 => valid.prop_map(|s| json!(s).to_string()),
        2 => odd.prop_map(|s| json!(s).to_string()),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_roles() -> BoxedStrategy<String> {
    let role = prop_oneof![
        Just("admin".to_owned()),
        Just("user".to_owned()),
        Just("chat_admin".to_owned()),
        "[a-z]{0,6}"
    ];
    prop_oneof![
        8 => prop::collection::vec(role, 0..4).prop_map(|r| json!(r).to_string()),
        1 => Just(r#"["admin",1]"#.to_owned()),
        1 => Just(r#""admin""#.to_owned()),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_names(expected: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        8 => Just(json!(expected).to_string()),
        1 => Just(json!([expected, "other"]).to_string()),
        1 => Just(json!(["other"]).to_string()),
        1 => Just("[]".to_owned()),
        1 => Just(json!([expected, 1]).to_string()),
        1 => Just(json!("other").to_string()),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_claim(name: &'static str, now: u64) -> BoxedStrategy<String> {
    match name {
        "user_id" | "sub" => raw_text("[a-z0-9-]{1,12}".boxed()),
        "name" => raw_text("[A-Za-z ]{0,12}".boxed()),
        "roles" => raw_roles(),
        "exp" => raw_time(now, true),
        "nbf" | "iat" => raw_time(now, false),
        "iss" => raw_names(ISSUER),
        "aud" => raw_names(AUDIENCE),
        _ => raw_any(),
    }
}

/// A payload written by hand: a subset of the claims (usually with a user and an
/// expiry), unknown claims, sometimes a repeated claim, in any order.
fn payload(now: u64) -> impl Strategy<Value = String> {
    let claims = ["user_id", "sub", "name", "roles", "exp", "nbf", "iat", "iss", "aud", "jti"];
    let fields: Vec<BoxedStrategy<Option<(String, String)>>> = claims
        .iter()
        .map(|&name| {
            let present = match name {
                "user_id" | "exp" => 0.9,
                "iss" | "aud" => 0.6,
                _ => 0.25,
            };
            prop::option::weighted(present, raw_claim(name, now).prop_map(move |raw| (name.to_owned(), raw)))
                .boxed()
        })
        .collect();
    let repeated = prop::option::weighted(
        0.08,
        prop::sample::select(claims.to_vec())
            .prop_flat_map(move |name| raw_claim(name, now).prop_map(move |raw| (name.to_owned(), raw))),
    );
    (fields, repeated)
        .prop_map(|(fields, repeated)| fields.into_iter().flatten().chain(repeated).collect::<Vec<_>>())
        .prop_shuffle()
        .prop_map(|pairs| {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
            format!("{{{}}}", body.join(","))
        })
}

fn token(now: u64) -> impl Strategy<Value = Token> {
    let alg = prop_oneof![
        8 => prop::sample::select(vec!["HS256", "HS384", "HS512"]),
        1 => prop::sample::select(vec!["none", "RS256", "ES256", "hs256"]),
    ];
    let payload = prop_oneof![
        12 => payload(now).boxed(),
        1 => raw_any(),
        1 => "\\PC{0,24}".boxed(),
    ];
    (alg, prop::bool::weighted(0.93), payload).prop_map(|(alg, right_key, payload)| Token {
        alg,
        right_key,
        payload,
    })
}

proptest! {
    #![proptest_config(fuzz::config(512))]

    #[test]
    fn every_signed_token_gets_its_documented_answer((setup, token) in (setup(), token(now_secs()))) {
        check(&setup, &token)?;
    }

    #[test]
    fn arbitrary_text_is_never_a_user(setup in setup(), text in "\\PC{0,80}|[A-Za-z0-9_.-]{0,80}") {
        prop_assert_eq!(setup.verifier().verify(&text), Err(AuthError::Invalid));
    }

    #[test]
    fn a_changed_character_makes_a_good_token_invalid(
        setup in setup(),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(b"AZaz09-_.=+/ ".to_vec()),
    ) {
        let good = Token {
            alg: "HS256",
            right_key: true,
            payload: json!({"user_id": "u1", "exp": now_secs() + 3600}).to_string(),
        }
        .encode();
        let mut bytes = good.clone().into_bytes();
        let at = position.index(bytes.len());
        bytes[at] = replacement;
        let changed = String::from_utf8(bytes).expect("ASCII");
        prop_assume!(changed != good);
        prop_assert_eq!(setup.verifier().verify(&changed), Err(AuthError::Invalid));
    }
}

fn only_hs256() -> Setup {
    Setup { algorithms: vec![Algorithm::HS256], require_exp: true, leeway: 30, issuer: None, audience: None }
}

fn signed(payload: &str) -> Token {
    Token { alg: "HS256", right_key: true, payload: payload.to_owned() }
}

/// Hand-picked cases: the extremes of every time claim and the ambiguous payloads.
/// The `exp` near `u64::MAX` / `i64::MAX` ones panicked in `verify` (`UNIX_EPOCH +
/// Duration::from_secs(exp)`) and `socket_deadline` (`exp + leeway`).
#[test]
fn regression_and_boundary_cases() {
    let now = now_secs();
    let hour = now + 3600;
    let payloads = [
        format!(r#"{{"user_id":"u1","exp":{}}}"#, u64::MAX),
        format!(r#"{{"user_id":"u1","exp":{}}}"#, u64::MAX - 1),
        format!(r#"{{"user_id":"u1","exp":{}}}"#, i64::MAX),
        format!(r#"{{"user_id":"u1","exp":{}}}"#, i64::MAX - 29),
        format!(r#"{{"user_id":"u1","exp":{}}}"#, i64::MAX - 30),
        format!(r#"{{"user_id":"u1","exp":{}}}"#, i64::MAX as u64 + 1),
        format!(r#"{{"user_id":"u1","exp":{LAST_ORDINARY_EXP}}}"#),
        r#"{"user_id":"u1","exp":18446744073709551616}"#.to_owned(),
        r#"{"user_id":"u1","exp":-1}"#.to_owned(),
        r#"{"user_id":"u1","exp":1e400}"#.to_owned(),
        format!(r#"{{"user_id":"u1","exp":{hour}.0}}"#),
        format!(r#"{{"user_id":"u1","exp":"{hour}"}}"#),
        r#"{"user_id":"u1","exp":null}"#.to_owned(),
        format!(r#"{{"user_id":"u1","exp":{hour},"nbf":{}}}"#, u64::MAX),
        format!(r#"{{"user_id":"u1","exp":{hour},"nbf":-1}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"nbf":0.5}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"nbf":null}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"iat":{}}}"#, u64::MAX),
        format!(r#"{{"user_id":"u1","exp":{hour},"iat":-1e400}}"#),
        format!(r#"{{"user_id":"alice","user_id":"admin","exp":{hour}}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"exp":{}}}"#, u64::MAX),
        format!(r#"{{"user_id":"u1","exp":1,"exp":{hour}}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"iss":"a","iss":"b"}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"jti":1,"jti":2}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"iss":1e400}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"iss":[1e400]}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"nbf":1e400}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"aud":-1e400}}"#),
        format!(r#"{{"user_id":"","sub":"s1","exp":{hour}}}"#),
        format!(r#"{{"user_id":null,"sub":"s1","exp":{hour}}}"#),
        format!(r#"{{"user_id":7,"sub":"s1","exp":{hour}}}"#),
        format!(r#"{{"sub":"","exp":{hour}}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"roles":"admin"}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"roles":[1]}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"roles":null}}"#),
        format!(r#"{{"user_id":"u1","exp":{hour},"name":"  "}}"#),
        format!(r#"["u1",null,null,null,{hour}]"#),
        format!(r#"[{hour},null,"u1",null,null]"#),
    ];
    for payload in &payloads {
        for setup in [
            only_hs256(),
            Setup { require_exp: false, leeway: 0, ..only_hs256() },
            Setup { leeway: 300, ..only_hs256() },
        ] {
            check(&setup, &signed(payload)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The oracle itself: a plain valid token is a user, so the properties above are not
/// vacuously refusing everything.
#[test]
fn the_oracle_accepts_an_ordinary_token() {
    let now = now_secs();
    let ordinary =
        signed(&format!(r#"{{"user_id":"u1","name":"Ann","roles":["admin"],"exp":{}}}"#, now + 3600));
    let expected =
        Expected { id: "u1".into(), name: "Ann".into(), roles: vec!["admin".into()], exp: Some(now + 3600) };
    assert_eq!(oracle(&only_hs256(), &ordinary, now), Some(Verdict::User(expected)));
    let user = only_hs256().verifier().verify(&ordinary.encode()).expect("valid");
    assert!(user.is_admin());
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let cases = (setup(), token(now));
    let accepted = (0..400)
        .filter(|_| {
            let (setup, token) = cases.new_tree(&mut runner).expect("case").current();
            matches!(oracle(&setup, &token, now), Some(Verdict::User(_)))
        })
        .count();
    let sample = BTreeSet::from([accepted > 60, accepted < 340]);
    assert_eq!(
        sample,
        BTreeSet::from([true]),
        "{accepted} of 400 generated tokens accepted: both answers must be common"
    );
}
