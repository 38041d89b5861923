//! A small namespace-aware XML tree for SOAP bodies: elements with their resolved namespace,
//! local name, attributes, text and byte span in the body (so each part can be kept as
//! received). DTDs and entities other than XML's five and character references are refused,
//! which rules out entity-expansion attacks.

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::event::PayloadError;

/// Deeper nesting than this is not a SOAP message.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<Attr>,
    /// The element's own text (character data directly inside it), entities resolved.
    pub text: String,
    pub children: Vec<Element>,
    /// Byte range of the whole element, tags included, in the parsed document.
    pub span: (usize, usize),
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.name == name
    }

    /// Children with this local name, in any namespace.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The attribute with this namespace and local name.
    pub fn attr(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.as_deref() == Some(ns) && a.name == name).map(|a| a.value.as_str())
    }
}

fn malformed(reason: impl std::fmt::Display) -> PayloadError {
    PayloadError::Malformed(format!("the body is not well-formed XML: {reason}"))
}

/// Refuses a character XML 1.0 does not allow (most control characters, U+FFFE, U+FFFF), also
/// one written as a character reference: PostgreSQL cannot store U+0000 in text.
fn allowed_chars(text: &str) -> Result<(), PayloadError> {
    match text.chars().find(|c| matches!(c, '\0'..='\x08' | '\x0B' | '\x0C' | '\x0E'..='\x1F' | '\u{FFFE}' | '\u{FFFF}')) {
        Some(c) => Err(malformed(format!("character U+{:04X} is not allowed in XML", u32::from(c)))),
        None => Ok(()),
    }
}

fn namespace(res: ResolveResult<'_>) -> Result<Option<String>, PayloadError> {
    match res {
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_string())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(malformed(format!("the namespace prefix '{prefix}' is not declared"))),
    }
}

fn open(reader: &NsReader<&[u8]>, ns: Option<String>, e: &BytesStart<'_>, start: usize) -> Result<Element, PayloadError> {
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(malformed)?;
        let (res, local) = reader.resolver().resolve_attribute(attr.key);
        let ns = match res {
            // Namespace declarations themselves are not data.
            _ if attr.key.0 == "xmlns" || attr.key.0.starts_with("xmlns:") => continue,
            ResolveResult::Bound(ns) => Some(ns.0.to_string()),
            _ => None,
        };
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(malformed)?.into_owned();
        attrs.push(Attr { ns, name: local.as_ref().to_string(), value });
    }
    Ok(Element { ns, name: e.local_name().as_ref().to_string(), attrs, text: String::new(), children: Vec::new(), span: (start, start) })
}

/// Parses a whole document into its root element.
pub(crate) fn parse_document(text: &str) -> Result<Element, PayloadError> {
    allowed_chars(text)?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let start = usize::try_from(reader.buffer_position()).map_err(malformed)?;
        let (res, event) = reader.read_resolved_event().map_err(malformed)?;
        let ns = match event {
            Event::Start(_) | Event::Empty(_) => namespace(res)?,
            _ => None,
        };
        let finished = match event {
            Event::Start(e) => {
                if stack.len() == MAX_DEPTH {
                    return Err(malformed(format!("elements nest deeper than {MAX_DEPTH} levels")));
                }
                let element = open(&reader, ns, &e, start)?;
                stack.push(element);
                None
            }
            Event::Empty(e) => {
                let mut element = open(&reader, ns, &e, start)?;
                element.span.1 = usize::try_from(reader.buffer_position()).map_err(malformed)?;
                Some(element)
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or_else(|| malformed("a closing tag has no opening tag"))?;
                element.span.1 = usize::try_from(reader.buffer_position()).map_err(malformed)?;
                Some(element)
            }
            Event::Text(t) => {
                push_text(&mut stack, &t.xml10_content())?;
                None
            }
            Event::CData(t) => {
                push_text(&mut stack, &t.xml10_content())?;
                None
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml10_content();
                        resolve_predefined_entity(&name).ok_or_else(|| malformed(format!("unknown entity &{name};")))?.to_string()
                    }
                };
                push_text(&mut stack, &resolved)?;
                None
            }
            Event::DocType(_) => return Err(malformed("a DOCTYPE is not accepted in a SOAP message")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => None,
            Event::Eof => break,
        };
        if let Some(element) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(element),
                None if root.is_none() => root = Some(element),
                None => return Err(malformed("the document has more than one root element")),
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(format!("<{}> is not closed", open.name)));
    }
    root.ok_or_else(|| malformed("the document is empty"))
}

/// Character data belongs to the innermost open element; outside the root only whitespace may stand.
fn push_text(stack: &mut [Element], text: &str) -> Result<(), PayloadError> {
    allowed_chars(text)?;
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_does_not_allow_are_refused_written_or_referenced() {
        for doc in ["<a>x\u{0}y</a>", "<a>x&#0;y</a>", "<a>x&#x1F;y</a>", "<a k=\"\u{1}\"/>", "<a>\u{FFFF}</a>"] {
            let result = parse_document(doc);
            assert!(matches!(&result, Err(PayloadError::Malformed(m)) if m.contains("not") && m.contains("XML")), "{doc:?}: {result:?}");
        }
        assert_eq!(parse_document("<a>tab\there\r\nnew line</a>").unwrap().text, "tab\there\nnew line", "allowed (CR LF read as LF)");
    }

    #[test]
    fn builds_a_namespaced_tree_with_spans() {
        let doc = r#"<?xml version="1.0"?><a:root xmlns:a="urn:a" xmlns:x="urn:x"><b x:k="v &amp; w">1 &lt; 2 &#x41;<![CDATA[<c>]]></b><e/></a:root>"#;
        let root = parse_document(doc).unwrap();
        assert!(root.is("urn:a", "root"));
        let b = root.child("b").unwrap();
        assert_eq!(b.ns, None);
        assert_eq!(b.text, "1 < 2 A<c>");
        assert_eq!(b.attr("urn:x", "k"), Some("v & w"));
        assert_eq!(&doc[b.span.0..b.span.1], r#"<b x:k="v &amp; w">1 &lt; 2 &#x41;<![CDATA[<c>]]></b>"#);
        let e = root.child("e").unwrap();
        assert_eq!(&doc[e.span.0..e.span.1], "<e/>");
    }

    #[test]
    fn refuses_what_is_not_a_plain_document() {
        for bad in
            ["", "<a>", "<a></b>", "<a/><b/>", "text", "<a>&custom;</a>", "<a><p:b/></a>", r#"<!DOCTYPE a [<!ENTITY x "boom">]><a>&x;</a>"#]
        {
            assert!(matches!(parse_document(bad), Err(PayloadError::Malformed(_))), "{bad:?} accepted");
        }
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(parse_document(&deep).is_err());
    }
}
