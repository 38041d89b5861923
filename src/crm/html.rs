//! Rich-text CRM notes (HubSpot note bodies are HTML) as the plain text the markup reads: one
//! line per paragraph, line break or list item, so a tag typed in a rich-text editor parses.

/// Elements that start and end a line of text: their opening and closing tags become line breaks.
const BLOCKS: [&str; 24] = [
    "address",
    "article",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "section",
    "tr",
    "ul",
];

/// The text of an HTML fragment: block tags (`<p>`, `</p>`, `<div>`, `<br>`, `<li>`, …) become
/// line breaks, other tags, comments and the content of `<script>`, `<style>` and `<head>` are
/// removed, and entities are decoded (`&amp;`, `&#8217;`, `&#x2019;`; `&nbsp;` becomes a space).
/// Line breaks, tabs and runs of spaces in the source are one space, as a browser shows them
/// (except inside `<pre>`). Never fails: a `<` that starts no tag is text, an unclosed tag or comment ends the text.
pub fn text_of_html(html: &str) -> String {
    // ASCII lower-casing keeps every byte offset, so `lower` finds what `html` holds.
    let lower = html.to_ascii_lowercase();
    let mut text = String::with_capacity(html.len());
    let mut pos = 0;
    let mut in_pre = false;
    while pos < html.len() {
        let Some(lt) = html[pos..].find('<').map(|i| pos + i) else {
            push_text(&mut text, &html[pos..], in_pre);
            break;
        };
        push_text(&mut text, &html[pos..lt], in_pre);
        let after = &lower[lt + 1..];
        if after.starts_with("!--") {
            pos = lower[lt + 4..].find("-->").map_or(html.len(), |i| lt + 4 + i + 3);
            continue;
        }
        if !after.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?')) {
            text.push('<');
            pos = lt + 1;
            continue;
        }
        let Some(gt) = tag_end(&lower, lt + 1) else { break };
        let closing = after.starts_with('/');
        let name: String = after.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        pos = gt + 1;
        if BLOCKS.contains(&name.as_str()) {
            text.push('\n');
            if name == "pre" {
                in_pre = !closing;
            }
        } else if !closing && matches!(name.as_str(), "script" | "style" | "head" | "template") {
            let end = format!("</{name}");
            pos = lower[pos..].find(&end).and_then(|i| tag_end(&lower, pos + i + 1)).map_or(html.len(), |gt| gt + 1);
        }
    }
    html_escape::decode_html_entities(&text).replace('\u{a0}', " ")
}

/// The `>` that ends the tag whose name starts at `from`; a `>` inside a quoted attribute value
/// does not.
fn tag_end(html: &str, from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, c) in html[from..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(from + i),
            _ => {}
        }
    }
    None
}

/// Text between tags; outside `<pre>` a run of white space is one space, as a browser shows it.
fn push_text(text: &mut String, source: &str, in_pre: bool) {
    if in_pre {
        text.push_str(source);
        return;
    }
    for c in source.chars() {
        if !matches!(c, ' ' | '\n' | '\r' | '\t' | '\u{0c}') {
            text.push(c);
        } else if !text.ends_with(' ') {
            text.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::text_of_html;

    #[test]
    fn paragraphs_breaks_and_list_items_become_lines() {
        let html =
            "<p>Intro</p><p>#need sso must: Okta<br>#need scim: SCIM</p><ul><li>#promise sso: SAML</li><li>two</li></ul><div>end</div>";
        let text = text_of_html(html);
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(lines, ["Intro", "#need sso must: Okta", "#need scim: SCIM", "#promise sso: SAML", "two", "end"]);
        assert_eq!(text_of_html("a<BR/>b<br />c<P>d"), "a\nb\nc\nd");
    }

    #[test]
    fn inline_tags_go_and_entities_are_decoded() {
        assert_eq!(
            text_of_html("<p><strong>#need</strong> audit&nbsp;log: R&amp;D&#8217;s &lt;export&gt; &#x2192; S3 &copy;</p>"),
            "\n#need audit log: R&D\u{2019}s <export> \u{2192} S3 \u{a9}\n"
        );
        // An entity that decodes to `<` is text, never a tag; unknown or unfinished ones stay.
        assert_eq!(text_of_html("&lt;p&gt; &bogus; &amp &#xZZ;"), "<p> &bogus; &amp &#xZZ;");
    }

    #[test]
    fn source_white_space_is_one_space_except_in_pre() {
        assert_eq!(text_of_html("<p>#need sso:\r\n  Okta\tSSO  <b> via</b> SAML&nbsp;&nbsp;2</p>"), "\n#need sso: Okta SSO via SAML  2\n");
        assert_eq!(text_of_html("<pre>a\nb</pre>c\nd"), "\na\nb\nc d");
    }

    #[test]
    fn comments_scripts_styles_and_quoted_attributes_leave_no_text() {
        let html = "<!--[if mso]><p>#need hidden: x</p><![endif]--><head><title>t</title></head>\
                    <style>p{color:red}</style><script>if (a<b) {}</script>\
                    <a href=\"x\" title=\"a>b\">link</a><SCRIPT type='x'>y</SCRIPT>after";
        assert_eq!(text_of_html(html), "linkafter");
    }

    #[test]
    fn broken_html_never_panics_and_keeps_the_text() {
        assert_eq!(text_of_html("a < b and c<3"), "a < b and c<3");
        assert_eq!(text_of_html("text <p unclosed"), "text ");
        assert_eq!(text_of_html("text <!-- open comment"), "text ");
        assert_eq!(text_of_html("<script>never closed"), "");
        assert_eq!(text_of_html(""), "");
        for s in ["<", "<!", "<!-", "<!--", "<!-->", "</", "<a", "<a '", "é<ü>ß", "<p\u{0}>", "&#0;", "&#1114112;", "&#xD800;"] {
            let _ = text_of_html(s);
        }
    }
}
