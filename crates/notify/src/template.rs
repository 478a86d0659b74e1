//! Topic templates (`sightline/{run_id}/{type}`): parsed and checked once, when the config is
//! validated, so a typo in a placeholder is a config error with its field path rather than a
//! stream of oddly named topics at run time.

use sightline_core::Event;

/// Placeholders a topic template may use.
pub const PLACEHOLDERS: [&str; 8] = [
    "run_id",
    "type",
    "class",
    "zone",
    "line",
    "rule",
    "track_id",
    "direction",
];

/// Value substituted for a placeholder the event has no value for (`{zone}` of a
/// `line_cross` event).
pub const MISSING: &str = "_";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

impl TopicTemplate {
    /// Parses `text`, accepting only the placeholders in `allowed`. The error says what is
    /// wrong in words fit for a [`sightline_core::FieldError`].
    pub fn parse(text: &str, allowed: &[&str]) -> Result<TopicTemplate, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.contains('+') || text.contains('#') {
            return Err("MQTT wildcards '+' and '#' are not allowed in a publish topic".into());
        }
        if text.starts_with('$') {
            return Err("topics starting with '$' are reserved by the broker".into());
        }
        if text.len() > 1024 {
            return Err("longer than 1024 bytes".into());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match (rest.find('{'), rest.find('}')) {
                (None, None) => {
                    parts.push(Part::Lit(rest.to_owned()));
                    break;
                }
                (Some(o), Some(c)) if o < c => {
                    if o > 0 {
                        parts.push(Part::Lit(rest[..o].to_owned()));
                    }
                    let name = &rest[o + 1..c];
                    if name.contains('{') {
                        return Err(format!("unclosed '{{' before {:?}", &rest[o..=c]));
                    }
                    if !allowed.contains(&name) {
                        return Err(format!(
                            "unknown placeholder {{{name}}}; allowed: {}",
                            allowed
                                .iter()
                                .map(|a| format!("{{{a}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    parts.push(Part::Var(name.to_owned()));
                    rest = &rest[c + 1..];
                }
                (Some(_), None) => return Err("unclosed '{'".into()),
                (_, Some(_)) => return Err("'}' without a matching '{'".into()),
            }
        }
        Ok(TopicTemplate { parts })
    }

    /// The topic for `ev`. Substituted values have `/`, `+`, `#` and NUL replaced by `_`, so
    /// a class or zone name cannot add topic levels or wildcards.
    pub fn render(&self, ev: &Event) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    let value = placeholder_value(ev, v);
                    let value = value.as_deref().unwrap_or(MISSING);
                    out.extend(value.chars().map(|c| match c {
                        '/' | '+' | '#' | '\0' => '_',
                        c => c,
                    }));
                }
            }
        }
        out
    }
}

fn placeholder_value(ev: &Event, name: &str) -> Option<String> {
    let b = &ev.body;
    match name {
        "run_id" => Some(ev.run_id.as_str().to_owned()),
        "type" => Some(b.kind.as_str().to_owned()),
        "class" => b.class.clone(),
        "zone" => b.zone.clone(),
        "line" => b.line.clone(),
        "rule" => Some(b.rule.clone()),
        "track_id" => b.track_id.map(|t| t.to_string()),
        "direction" => b.direction.map(|d| d.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{EventId, EventKind, Pts, RuleEvent, RunId};

    fn ev() -> Event {
        let mut body = RuleEvent::new(EventKind::ZoneEnter, "r1", Pts::from_millis(5));
        body.zone = Some("dock/a#1".into());
        body.class = Some("person".into());
        Event {
            id: EventId::generate(),
            run_id: RunId::parse("cam-1").unwrap(),
            wall_ms: 0,
            body,
            media: None,
        }
    }

    #[test]
    fn renders_placeholders_and_sanitises_values() {
        let t = TopicTemplate::parse("s/{run_id}/{type}/{zone}/{line}", &PLACEHOLDERS).unwrap();
        assert_eq!(t.render(&ev()), "s/cam-1/zone_enter/dock_a_1/_");
    }

    #[test]
    fn rejects_bad_templates() {
        for (t, want) in [
            ("s/{runid}", "unknown placeholder {runid}"),
            ("s/{run_id", "unclosed"),
            ("s/run_id}", "without a matching"),
            ("s/{a{run_id}", "unclosed"),
            ("s/+/x", "wildcards"),
            ("", "empty"),
            ("$SYS/x", "reserved"),
        ] {
            let err = TopicTemplate::parse(t, &PLACEHOLDERS).unwrap_err();
            assert!(err.contains(want), "{t:?}: {err}");
        }
        assert!(TopicTemplate::parse("z/{zone}/{type}", &["zone", "run_id"]).is_err());
    }
}
