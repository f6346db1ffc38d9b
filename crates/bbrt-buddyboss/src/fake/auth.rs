//! Who a request is: WordPress's credential schemes as the site checks them, and the
//! companion plugin's tickets and site credentials.

use std::net::SocketAddr;

use super::render::Answer;
use super::state::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Value, json};

pub(super) enum Caller {
    Anonymous,
    User(u64, &'static str),
}

/// HMAC-SHA256 (RFC 2104) over sha2, for the fake's tickets and site credentials.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = sha2::Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    sha2::Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Signs `claims` as the plugin does: `b64u(header) "." b64u(claims) "." b64u(mac)`, with
/// the plugin's exact header bytes.
pub fn sign_ticket(kid: &str, secret: &str, claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"bbrt-ticket"}}"#);
    let signed = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
    let mac = hmac_sha256(secret.as_bytes(), signed.as_bytes());
    format!("{signed}.{}", b64.encode(mac))
}

/// A key of this fake's own, different per instance.
pub(super) fn site_key(addr: SocketAddr) -> [u8; 32] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hmac_sha256(addr.to_string().as_bytes(), &nanos.to_be_bytes())
}

pub(super) const SITE_CREDENTIAL_PREFIX: &str = "bbrt-sc1.";

pub(super) fn site_key_id(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"bbrt site credential kid|")
        .chain_update(key)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn seal_site_credential(key: &[u8; 32], user: u64, token: &str) -> String {
    let kid = site_key_id(key);
    let payload = json!({"uid": user, "tok": token}).to_string();
    let mac = hmac_sha256(
        key,
        format!("{SITE_CREDENTIAL_PREFIX}{kid}.{payload}").as_bytes(),
    );
    let mut body = payload.into_bytes();
    body.extend_from_slice(&mac);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{SITE_CREDENTIAL_PREFIX}{kid}.{}", b64.encode(body))
}

/// The plugin's check of `X-BBRT-Session`, with the reason it gives when it refuses.
pub(super) fn open_site_credential(s: &State, credential: &str) -> Result<u64, &'static str> {
    let rest = credential
        .strip_prefix(SITE_CREDENTIAL_PREFIX)
        .filter(|_| credential.len() <= 1024)
        .ok_or("malformed")?;
    let (kid, sealed) = rest.split_once('.').ok_or("malformed")?;
    if kid != site_key_id(&s.site_key) {
        return Err("unknown key");
    }
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| "malformed")?;
    let split = body.len().checked_sub(32).ok_or("malformed")?;
    let (payload, mac) = body.split_at(split);
    let mut signed = format!("{SITE_CREDENTIAL_PREFIX}{kid}.").into_bytes();
    signed.extend_from_slice(payload);
    if hmac_sha256(&s.site_key, &signed).as_slice() != mac {
        return Err("bad seal");
    }
    let payload: Value = serde_json::from_slice(payload).map_err(|_| "bad seal")?;
    let (Some(uid), Some(tok)) = (payload["uid"].as_u64(), payload["tok"].as_str()) else {
        return Err("bad seal");
    };
    if s.user(uid).is_none() {
        return Err("no such user");
    }
    if !s.sessions.contains(&(uid, tok.to_owned())) {
        return Err("session ended");
    }
    Ok(uid)
}

pub(super) fn redact(name: &str, value: &str) -> String {
    match name {
        "authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} [redacted]"),
            None => "[redacted]".into(),
        },
        "cookie" | "x-wp-nonce" | "accesstoken" | "x-bbrt-session" => "[redacted]".into(),
        _ => value.to_owned(),
    }
}

/// Who the request is from; `Err` when WordPress rejects the credential outright.
pub(super) fn authenticate(s: &State, headers: &HeaderMap) -> Result<Caller, Answer> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The plugin's filter runs after WordPress's own checks; bbrt sends this header
    // alone, so checking it first changes nothing here.
    if let Some(credential) = get("x-bbrt-session") {
        return match open_site_credential(s, credential) {
            Ok(user) => Ok(Caller::User(user, "site-session")),
            Err(reason) => Err(Answer::error_with_data(
                401,
                "bbrt_session_invalid",
                "The bbrt session is not valid: connect again.",
                json!({"status": 401, "reason": reason}),
            )),
        };
    }
    if let Some(value) = get("authorization")
        && let Some((scheme, rest)) = value.split_once(' ')
    {
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(match s.bearer.get(rest) {
                Some(&u) if !s.revoked.contains(rest) => Caller::User(u, "bearer"),
                _ => Caller::Anonymous,
            });
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            else {
                return Ok(Caller::Anonymous);
            };
            let Some((login, password)) = decoded.split_once(':') else {
                return Ok(Caller::Anonymous);
            };
            let Some(user) = s
                .users
                .iter()
                .find(|u| u.login == login || u.email == login)
            else {
                return Err(Answer::error(
                    401,
                    "invalid_username",
                    "<strong>Error:</strong> Unknown username. Check again or try your email address.",
                ));
            };
            let clean: String = password.chars().filter(|c| !c.is_whitespace()).collect();
            if user.app_passwords.contains(&clean) && !s.revoked.contains(&clean) {
                return Ok(Caller::User(user.id, "basic"));
            }
            return Err(Answer::error(
                401,
                "incorrect_password",
                "The provided password is an invalid application password.",
            ));
        }
    }
    if let Some(jwt) = get("accesstoken")
        && let Some(&u) = s
            .access_tokens
            .get(jwt)
            .filter(|_| !s.revoked.contains(jwt))
    {
        return Ok(Caller::User(u, "access-token"));
    }
    if let Some(cookie) = get("cookie")
        && let Some((u, nonce)) = s
            .cookies
            .get(cookie)
            .filter(|_| !s.revoked.contains(cookie))
    {
        return match get("x-wp-nonce") {
            None => Ok(Caller::Anonymous),
            Some(n) if n == nonce => Ok(Caller::User(*u, "cookie-nonce")),
            Some(_) => Err(Answer::error(
                403,
                "rest_cookie_invalid_nonce",
                "Cookie nonce is invalid",
            )),
        };
    }
    Ok(Caller::Anonymous)
}
