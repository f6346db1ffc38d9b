//! What WordPress and BuddyBoss do to message text: the kses filter on the way in,
//! `wpautop` and the excerpt on the way out.

use crate::text::strip_tags;

/// What WordPress and BuddyBoss do to message content, as the real site showed it (its
/// kses check, `/work/bbsite` in issue 15): a `<` that no `>` closes before the next `<`
/// becomes `&lt;` (`wp_pre_kses_less_than`); any other `<…>` is a tag for kses, whatever
/// follows the `<`: an allowed name keeps the tag without its attributes
/// (`< b and c >` becomes `<b>`), anything else is removed, as are comments; a lone `>`
/// becomes `&gt;`, a lone `&` `&amp;`; tags left open are closed at the end
/// (`if a < b and c > d` is stored as `if a <b> d</b>`); characters outside the Basic
/// Multilingual Plane (emoji) become `&#x…;` (`wp_encode_emoji`).
pub(super) fn kses(input: &str) -> String {
    const ALLOWED: &[&str] = &[
        "a",
        "b",
        "strong",
        "i",
        "em",
        "p",
        "br",
        "ul",
        "ol",
        "li",
        "blockquote",
        "code",
        "pre",
        "span",
    ];
    const VOID: &[&str] = &["br"];
    let mut out = String::with_capacity(input.len());
    let mut open: Vec<String> = Vec::new();
    let mut rest = input;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' if rest.starts_with("<!--") => {
                rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            }
            '<' => {
                let Some(len) = crate::text::kses_tag_len(rest) else {
                    out.push_str("&lt;");
                    rest = &rest[1..];
                    continue;
                };
                let tag = &rest[1..len - 1];
                rest = &rest[len..];
                let tag = tag.trim_start();
                let (closing, tag) = match tag.strip_prefix('/') {
                    Some(t) => (true, t.trim_start()),
                    None => (false, tag),
                };
                let name: String = tag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                if name.is_empty() || !ALLOWED.contains(&name.as_str()) {
                    continue;
                }
                if closing {
                    if let Some(i) = open.iter().rposition(|n| *n == name) {
                        open.remove(i);
                    }
                    out.push_str(&format!("</{name}>"));
                } else if tag.trim_end().ends_with('/') || VOID.contains(&name.as_str()) {
                    out.push_str(&format!("<{name} />"));
                } else {
                    out.push_str(&format!("<{name}>"));
                    open.push(name);
                }
            }
            '>' => {
                out.push_str("&gt;");
                rest = &rest[1..];
            }
            '&' => {
                let after = &rest[1..];
                let is_entity = after
                    .find(';')
                    .filter(|&e| e > 0 && e <= 10)
                    .is_some_and(|e| {
                        let name = &after[..e];
                        name.chars().all(|c| c.is_ascii_alphanumeric())
                            || (name.starts_with('#')
                                && name[1..].chars().all(|c| c.is_ascii_hexdigit() || c == 'x'))
                    });
                out.push_str(if is_entity { "&" } else { "&amp;" });
                rest = after;
            }
            c if u32::from(c) > 0xffff => {
                out.push_str(&format!("&#x{:x};", u32::from(c)));
                rest = &rest[c.len_utf8()..];
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    for name in open.iter().rev() {
        out.push_str(&format!("</{name}>"));
    }
    out
}

pub(super) fn autop(stored: &str) -> String {
    format!("<p>{}</p>\n", stored.trim().replace('\n', "<br />\n"))
}

pub(super) fn excerpt(stored: &str) -> String {
    let plain = strip_tags(stored);
    let plain = plain.trim();
    if plain.chars().count() <= 75 {
        plain.to_owned()
    } else {
        let cut: String = plain.chars().take(75).collect();
        format!("{}&hellip;", cut.trim_end())
    }
}
