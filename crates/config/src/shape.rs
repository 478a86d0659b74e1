//! Refuses a JSON array where the config's JSON Schema wants an object (a table in TOML).
//!
//! serde's derived `Deserialize` for a struct also accepts a sequence, filling the fields by
//! position: `"retention": []` or `"retention": [null, null]` was taken as an empty
//! retention override, although the published schema (and the OpenAPI document that embeds
//! it) says the field is an object, and such a body can only be a mistake. This pass walks
//! the parsed document beside the generated schema before it is deserialized and names the
//! first such field. It checks only that one thing — everything else is serde's and
//! `validate`'s job — so it follows `$ref`, `allOf`/`anyOf`/`oneOf`, `properties`,
//! `additionalProperties` and `items`, and nothing more.

use serde_json::{Map, Value};

/// The path and message of the first array found where only an object is allowed.
pub(crate) fn array_for_object(doc: &Value, schema: &Value) -> Option<(String, String)> {
    let defs = schema
        .get("definitions")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    walk(doc, schema, &defs, String::new(), 0)
}

fn resolve<'a>(s: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/definitions/")
            .and_then(|n| defs.get(n))
            .unwrap_or(s),
        None => s,
    }
}

/// The schema itself and every branch of its `allOf`/`anyOf`/`oneOf`, references resolved.
fn branches<'a>(s: &'a Value, defs: &'a Map<String, Value>, out: &mut Vec<&'a Value>, depth: u32) {
    let s = resolve(s, defs);
    if depth > 16 {
        return;
    }
    out.push(s);
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            for b in list {
                branches(b, defs, out, depth + 1);
            }
        }
    }
}

fn has_type(s: &Value, t: &str) -> bool {
    match s.get("type") {
        Some(Value::String(x)) => x == t,
        Some(Value::Array(xs)) => xs.iter().any(|x| x == t),
        _ => false,
    }
}

fn wants_object(s: &Value) -> bool {
    has_type(s, "object") || s.get("properties").is_some()
}

fn takes_array(s: &Value) -> bool {
    has_type(s, "array") || s.get("items").is_some()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    v: &Value,
    schema: &Value,
    defs: &Map<String, Value>,
    path: String,
    depth: u32,
) -> Option<(String, String)> {
    if depth > 64 {
        return None;
    }
    let mut all = Vec::new();
    branches(schema, defs, &mut all, 0);
    match v {
        Value::Array(items) => {
            if all.iter().any(|s| wants_object(s)) && !all.iter().any(|s| takes_array(s)) {
                let at = if path.is_empty() {
                    "(root)".into()
                } else {
                    path
                };
                return Some((
                    at,
                    "expected a table (a JSON object), found an array".into(),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                for s in &all {
                    if let Some(item_schema) = s.get("items").filter(|x| x.is_object())
                        && let Some(e) =
                            walk(item, item_schema, defs, format!("{path}[{i}]"), depth + 1)
                    {
                        return Some(e);
                    }
                }
            }
            None
        }
        Value::Object(map) => {
            for (k, child) in map {
                for s in &all {
                    let sub = s
                        .get("properties")
                        .and_then(|p| p.get(k))
                        .or_else(|| s.get("additionalProperties").filter(|x| x.is_object()));
                    if let Some(sub) = sub
                        && let Some(e) = walk(child, sub, defs, join(&path, k), depth + 1)
                    {
                        return Some(e);
                    }
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PipelineConfig;
    use serde_json::json;

    fn check(doc: Value) -> Option<(String, String)> {
        array_for_object(&doc, &PipelineConfig::json_schema())
    }

    #[test]
    fn arrays_are_refused_where_tables_are_expected_at_any_depth() {
        let ok = json!({"model": {"name": "m", "classes": ["person"]},
            "zones": {"z": {"points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]}},
            "media": {"retention": {"events_days": 3.0}, "events": ["dwell"]}});
        assert_eq!(check(ok), None);
        let (path, msg) =
            check(json!({"model": {"name": "m"}, "media": {"retention": [null, null]}})).unwrap();
        assert_eq!(path, "media.retention");
        assert!(msg.contains("found an array"), "{msg}");
        assert_eq!(check(json!({"model": []})).unwrap().0, "model");
        assert_eq!(check(json!([])).unwrap().0, "(root)");
        // Map values and list items are followed too.
        assert_eq!(
            check(json!({"model": {"name": "m"}, "zones": {"z": []}}))
                .unwrap()
                .0,
            "zones.z"
        );
        assert_eq!(
            check(json!({"model": {"name": "m"}, "rules": [[]]}))
                .unwrap()
                .0,
            "rules[0]"
        );
    }
}
