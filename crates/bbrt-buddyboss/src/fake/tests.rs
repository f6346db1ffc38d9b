//! The fake site's own unit tests.

use super::filters::kses;
use super::routes::parse_query;

#[test]
fn kses_rewrites_as_the_real_site_did() {
    // The real site's kses check (/work/bbsite, issue 15): sent, stored.
    assert_eq!(kses("if a < b and c > d"), "if a <b> d</b>");
    assert_eq!(kses("a<b"), "a&lt;b");
    assert_eq!(kses("x > y"), "x &gt; y");
    assert_eq!(
        kses("<b>bold</b> & <script>alert(1)</script>"),
        "<b>bold</b> &amp; alert(1)"
    );
    assert_eq!(kses("Tom & Jerry"), "Tom &amp; Jerry");
    assert_eq!(kses("  padded  "), "  padded  ");
    assert_eq!(kses("line1\nline2"), "line1\nline2");
    assert_eq!(kses("emoji \u{1f600} \u{fc}"), "emoji &#x1f600; \u{fc}");
    // And a few more of the same rules.
    assert_eq!(kses("3 < 5 <b>x</b>"), "3 &lt; 5 <b>x</b>");
    assert_eq!(
        kses("x<br/>y <!-- note --> <B class=\"x\">z</B >"),
        "x<br />y  <b>z</b>"
    );
    assert_eq!(kses("fish & chips &copy;"), "fish &amp; chips &copy;");
}

#[test]
fn percent_decoding() {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        parse_query(Some("rest_route=%2Fbuddyboss%2Fv1&q=a+b%zz%4&&flag")),
        vec![
            pair("rest_route", "/buddyboss/v1"),
            pair("q", "a b%zz%4"),
            pair("flag", "")
        ]
    );
    assert_eq!(parse_query(None), Vec::new());
}
