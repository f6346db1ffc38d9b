//! The plugin's HTTP cases (`integrations/wordpress/bbrt/tests/http-cases.json`) against
//! the fake site's plugin route: the same file the plugin's own suite runs under `php -S`,
//! so the fake and the plugin keep one contract (`docs/wordpress.md`, "The HTTP cases").

use std::collections::HashMap;

use base64::Engine as _;
use bbrt_buddyboss::fake::FakeSite;
use serde_json::{Value, json};

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../integrations/wordpress/bbrt/tests/http-cases.json"
);

fn http() -> reqwest::Client {
    // Err means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

struct Fixture {
    site: FakeSite,
    thread: u64,
    users: HashMap<String, u64>,
}

/// Replaces the placeholders of `text`; a string that is exactly one placeholder takes
/// its value's type.
fn fill_str(text: &str, f: &Fixture, run: &str, saved: &HashMap<String, Value>) -> Value {
    let value_of = |name: &str| -> Option<Value> {
        if name == "thread" {
            return Some(json!(f.thread));
        }
        if name == "run" {
            return Some(json!(run));
        }
        if let Some(user) = name.strip_prefix("uid:") {
            return f.users.get(user).map(|id| json!(id));
        }
        name.strip_prefix("saved:")
            .and_then(|n| saved.get(n).cloned())
    };
    if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'))
        && !inner.contains(['{', '}'])
        && let Some(v) = value_of(inner)
    {
        return v;
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..start + len];
        match value_of(name) {
            Some(Value::String(s)) => out.push_str(&s),
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Value::String(out)
}

fn fill(v: &Value, f: &Fixture, run: &str, saved: &HashMap<String, Value>) -> Value {
    match v {
        Value::String(s) => fill_str(s, f, run, saved),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, f, run, saved)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), fill(x, f, run, saved)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The value at a dotted path; `-1` is a list's last element.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, part| match v {
        Value::Array(a) if part == "-1" => a.last(),
        Value::Array(a) => a.get(part.parse::<usize>().ok()?),
        Value::Object(m) => m.get(part),
        _ => None,
    })
}

/// Scalars compare by their JSON text, strings unquoted.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn the_plugins_http_cases_pass_against_the_fake_route() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(CASES).expect("the cases file is there"))
            .expect("the cases file is JSON");
    assert_eq!(cases["format"], "bbrt-http-cases/1");
    let site = FakeSite::start_seeded().await.expect("fake site starts");
    site.set_plugin(true);
    let users: HashMap<String, u64> = [("alice", 2), ("bob", 3), ("carol", 4)]
        .map(|(n, id)| (n.to_owned(), id))
        .into();
    let (thread, _) = site.create_thread(2, &[3], "the fixture thread");
    let f = Fixture {
        site,
        thread,
        users,
    };
    let http = http();
    let cases = cases["cases"].as_array().expect("a list of cases");
    assert!(cases.len() >= 10, "the whole file is read");
    for (n, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().expect("a named case");
        let run = format!("r{n}x{}", std::process::id());
        let mut saved: HashMap<String, Value> = HashMap::new();
        for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let ctx = format!("case {name:?}, step {i}");
            let url = format!(
                "{}{}",
                f.site.api_root().trim_end_matches('/'),
                step["path"].as_str().expect("a path")
            );
            let method: reqwest::Method = step["method"]
                .as_str()
                .expect("a method")
                .parse()
                .expect("an HTTP method");
            let mut request = http.request(method, &url);
            if let Some(user) = step["as"].as_str() {
                let password = if step["credential"] == "invalid" {
                    "not-the-password".to_owned()
                } else {
                    format!("{user}-app-pass")
                };
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                request = request.header("authorization", format!("Basic {basic}"));
            }
            if let Some(body) = step.get("body") {
                request = request.json(&fill(body, &f, &run, &saved));
            }
            let response = request.send().await.expect("the fake site answers");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let expect = fill(&step["expect"], &f, &run, &saved);
            assert_eq!(
                Some(u64::from(status)),
                expect["status"].as_u64(),
                "{ctx}: {body}"
            );
            for (header, want) in expect["headers"].as_object().into_iter().flatten() {
                let got = headers.get(header.as_str()).and_then(|v| v.to_str().ok());
                assert_eq!(got, Some(scalar(want).as_str()), "{ctx}: header {header}");
            }
            for (path, want) in expect["json"].as_object().into_iter().flatten() {
                assert_eq!(
                    at(&body, path).map(scalar),
                    Some(scalar(want)),
                    "{ctx}: {path} in {body}"
                );
            }
            for path in expect["present"].as_array().into_iter().flatten() {
                let path = path.as_str().expect("a path");
                assert!(at(&body, path).is_some(), "{ctx}: {path} in {body}");
            }
            for (path, want) in expect["contains"].as_object().into_iter().flatten() {
                let list = at(&body, path).and_then(Value::as_array);
                assert!(
                    list.is_some_and(|l| l.iter().any(|v| scalar(v) == scalar(want))),
                    "{ctx}: {path} holds {want}"
                );
            }
            for (name, source) in step["save"].as_object().into_iter().flatten() {
                let source = source.as_str().expect("a source");
                let value = if let Some(h) = source.strip_prefix("header:") {
                    headers
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| json!(v))
                } else {
                    source
                        .strip_prefix("json:")
                        .and_then(|p| at(&body, p).cloned())
                };
                saved.insert(
                    name.clone(),
                    value.unwrap_or_else(|| panic!("{ctx}: {source}")),
                );
            }
        }
    }
}

#[tokio::test]
async fn without_the_plugin_the_route_is_not_there() {
    let site = FakeSite::start_seeded().await.expect("fake site starts");
    let http = http();
    let index: Value = http
        .get(site.api_root())
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert!(
        !index["namespaces"]
            .as_array()
            .expect("namespaces")
            .contains(&json!("bbrt/v1"))
    );
    let answer = http
        .post(format!("{}bbrt/v1/messages", site.api_root()))
        .bearer_auth("alice-token")
        .json(&json!({"id": 1, "message": "hi", "client_message_id": "k"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status().as_u16(), 404);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["code"], "rest_no_route");
}
