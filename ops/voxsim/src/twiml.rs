//! The TwiML subset a voice-agent platform answers with: `<Connect><Stream>` (with
//! `<Parameter>`s), `<Start><Stream>`, `<Say>`, `<Play>`, `<Pause>`, `<Hangup/>`,
//! `<Reject/>`. A small XML reader is enough for it: elements, attributes, entities;
//! text, comments and the declaration are skipped.

/// One verb of a `<Response>`, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Connect><Stream>`: a bidirectional media stream; the call goes on to the next
    /// verb when the stream ends.
    Connect(Stream),
    /// `<Start><Stream>`: a listen-only stream (simulated like a connected one).
    Start(Stream),
    /// `<Say>`, `<Play>`, `<Pause>`: audio to the callee, which takes no time here.
    Speak,
    Hangup,
    Reject,
    /// Anything else (`<Redirect>`, `<Gather>`, `<Dial>`, …): not simulated.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub url: String,
    /// The `<Parameter name value>` children, for `start.customParameters`.
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses a TwiML document into its verbs. The error says what is wrong.
pub fn parse(xml: &str) -> Result<Vec<Verb>, String> {
    let root = read_document(xml)?;
    if root.name != "Response" {
        return Err(format!("the root element is <{}>, not <Response>", root.name));
    }
    root.children.iter().map(verb).collect()
}

fn verb(e: &Element) -> Result<Verb, String> {
    Ok(match e.name.as_str() {
        "Connect" | "Start" => {
            let stream = e
                .children
                .iter()
                .find(|c| c.name == "Stream")
                .ok_or_else(|| format!("<{}> without a <Stream>", e.name))?;
            let url = stream.attr("url").filter(|u| !u.is_empty()).ok_or("<Stream> without a url")?.to_string();
            let parameters = stream
                .children
                .iter()
                .filter(|c| c.name == "Parameter")
                .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value").unwrap_or("").to_string())))
                .collect();
            let s = Stream { url, parameters };
            if e.name == "Connect" { Verb::Connect(s) } else { Verb::Start(s) }
        }
        "Say" | "Play" | "Pause" => Verb::Speak,
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject,
        other => Verb::Other(other.to_string()),
    })
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or_else(|| format!("unterminated entity in {s:?}"))?;
        let entity = &after[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    entity.strip_prefix('#').and_then(|d| d.parse().ok())
                };
                code.and_then(char::from_u32).ok_or_else(|| format!("unknown entity &{entity};"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits `name a="1" b='2'` into the name and its attributes.
fn read_tag(inner: &str) -> Result<(String, Vec<(String, String)>), String> {
    let inner = inner.trim();
    let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
    let name = inner[..name_end].to_string();
    if name.is_empty() {
        return Err("an element without a name".into());
    }
    let mut attrs = Vec::new();
    let mut rest = inner[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| format!("attribute without a value in <{name}>"))?;
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        let quote = quote.ok_or_else(|| format!("unquoted attribute {key} in <{name}>"))?;
        let close = after[1..].find(quote).ok_or_else(|| format!("unterminated attribute {key} in <{name}>"))?;
        attrs.push((key, unescape(&after[1..1 + close])?));
        rest = after[close + 2..].trim_start();
    }
    Ok((name, attrs))
}

/// The end of a tag starting at `s[0] == '<'`: the index of its `>`, quotes respected.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn read_document(xml: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unterminated comment")?;
            rest = &after[end + 3..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after.find("?>").ok_or("unterminated declaration")?;
            rest = &after[end + 2..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("unterminated CDATA")?;
            rest = &after[end + 3..];
            continue;
        }
        let end = tag_end(rest).ok_or("unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let done = stack.pop().ok_or("unbalanced closing tag")?;
            if done.name != name.trim() {
                return Err(format!("</{}> closes <{}>", name.trim(), done.name));
            }
            stack.last_mut().ok_or("unbalanced closing tag")?.children.push(done);
        } else if let Some(body) = tag.strip_suffix('/') {
            let (name, attrs) = read_tag(body)?;
            stack.last_mut().ok_or("unbalanced tag")?.children.push(Element { name, attrs, children: vec![] });
        } else if tag.starts_with('!') {
            // <!DOCTYPE …>: nothing TwiML needs.
        } else {
            let (name, attrs) = read_tag(tag)?;
            stack.push(Element { name, attrs, children: vec![] });
        }
    }
    if stack.len() != 1 {
        return Err(format!("<{}> is not closed", stack.last().map_or("?", |e| e.name.as_str())));
    }
    let mut top = stack.pop().unwrap_or_default();
    match top.children.len() {
        1 => Ok(top.children.remove(0)),
        0 => Err("no root element".into()),
        n => Err(format!("{n} root elements")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_voxgates_connect() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect><Stream url=\"ws://127.0.0.1:8080/media/twilio\"><Parameter name=\"call_id\" value=\"ca_1&quot;x\"/></Stream></Connect></Response>\n";
        assert_eq!(
            parse(xml).unwrap(),
            vec![Verb::Connect(Stream {
                url: "ws://127.0.0.1:8080/media/twilio".into(),
                parameters: vec![("call_id".into(), "ca_1\"x".into())],
            })]
        );
    }

    #[test]
    fn reads_voxgates_outbound_connect_with_its_reserved_slot() {
        // The stream URL has no query string; the call and its worker come as parameters,
        // which the stream's `start` hands back as customParameters.
        let xml = "<Response><Connect><Stream url=\"wss://gw.example.com/media/twilio\"><Parameter name=\"call_id\" value=\"ca_1\"/><Parameter name=\"slot\" value=\"nd_1/2/rsv_3\"/></Stream></Connect></Response>";
        assert_eq!(
            parse(xml).unwrap(),
            vec![Verb::Connect(Stream {
                url: "wss://gw.example.com/media/twilio".into(),
                parameters: vec![("call_id".into(), "ca_1".into()), ("slot".into(), "nd_1/2/rsv_3".into())],
            })]
        );
    }

    #[test]
    fn reads_say_then_hangup_and_the_rest() {
        let xml = r#"<Response>
            <!-- no free agent -->
            <Say voice='alice'>Sorry, everyone is busy &amp; we will call back.</Say>
            <Pause length="1"/>
            <Hangup/>
        </Response>"#;
        assert_eq!(parse(xml).unwrap(), vec![Verb::Speak, Verb::Speak, Verb::Hangup]);
        assert_eq!(parse("<Response><Reject reason=\"busy\"/></Response>").unwrap(), vec![Verb::Reject]);
        assert_eq!(parse("<Response/>").unwrap(), vec![]);
        assert_eq!(
            parse("<Response><Redirect>http://x/y</Redirect></Response>").unwrap(),
            vec![Verb::Other("Redirect".into())]
        );
        let start = parse(r#"<Response><Start><Stream url="ws://a/b?x=1&amp;y=2"/></Start><Say>hi</Say></Response>"#);
        assert_eq!(
            start.unwrap(),
            vec![Verb::Start(Stream { url: "ws://a/b?x=1&y=2".into(), parameters: vec![] }), Verb::Speak]
        );
    }

    #[test]
    fn bad_documents_say_why() {
        assert!(parse("<Response><Say>hi</Response>").unwrap_err().contains("closes"));
        assert!(parse("<Response>").unwrap_err().contains("not closed"));
        assert!(parse("<Resp/>").unwrap_err().contains("not <Response>"));
        assert!(parse("hello").unwrap_err().contains("no root"));
        assert!(parse("<Response><Connect/></Response>").unwrap_err().contains("without a <Stream>"));
        assert!(parse("<Response><Connect><Stream/></Connect></Response>").unwrap_err().contains("url"));
        assert!(parse("<Response><Say a=b/></Response>").unwrap_err().contains("unquoted"));
    }
}
