//! Reading a JSON request body field by field, every bad field named by its
//! path at once. The one reader the main API's request parsers share.
//!
//! Strict by design: an object's keys are checked against the keys the
//! server acts on ([`Fields::only`]); anything else is refused with a message
//! naming it, never silently dropped.

use serde_json::{Map, Value};

use crate::FieldError;

/// A key the server knows but does not serve, with the reason given to the partner.
pub type Refused = (&'static str, &'static str);

/// The errors of [`Fields::only`] for a body the caller reads itself.
pub fn refuse_unknown(map: &Map<String, Value>, allowed: &[&str], refused: &[Refused]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    Fields { errors: &mut errors }.only(map, "", allowed, refused);
    errors
}

/// What PHP's `[]` stands for when an object is expected.
static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

pub(crate) struct Fields<'a> {
    pub errors: &'a mut Vec<FieldError>,
}

/// Whether `map` carries `key` with a value (a JSON `null` counts as absent).
pub(crate) fn present(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(|v| !v.is_null())
}

/// `parent.key`, or `key` at the top level.
///
/// Built by hand, not with `format!`: every field a request names is joined
/// once whether or not it is wrong, and `format!`'s machinery showed in the
/// profile of `session/create` (issue 12).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        return key.to_string();
    }
    let mut path = String::with_capacity(parent.len() + 1 + key.len());
    path.push_str(parent);
    path.push('.');
    path.push_str(key);
    path
}

impl Fields<'_> {
    pub fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// Refuses every key of `map` that is neither in `allowed` nor in
    /// `refused` (which carries its own reason). Null values count as absent.
    pub fn only(&mut self, map: &Map<String, Value>, path: &str, allowed: &[&str], refused: &[Refused]) {
        for (key, value) in map {
            if value.is_null() || allowed.contains(&key.as_str()) {
                continue;
            }
            let message = match refused.iter().find(|(k, _)| *k == key) {
                Some((_, why)) => (*why).to_string(),
                None => format!("is not a field open131 knows here (known: {})", allowed.join(", ")),
            };
            self.err(&join(path, key), message);
        }
    }

    /// A required object; PHP clients send an empty one as `[]`.
    pub fn object<'v>(
        &mut self,
        parent: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Map<String, Value>> {
        match parent.get(key) {
            Some(Value::Object(m)) => Some(m),
            Some(Value::Array(a)) if a.is_empty() => Some(&EMPTY),
            None | Some(Value::Null) => {
                self.err(path, "is required");
                None
            }
            Some(_) => {
                self.err(path, "must be an object");
                None
            }
        }
    }

    /// An optional object; PHP clients send an empty one as `[]`.
    pub fn optional_object<'v>(
        &mut self,
        parent: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<Option<&'v Map<String, Value>>> {
        match parent.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(m)) => Some(Some(m)),
            Some(Value::Array(a)) if a.is_empty() => Some(Some(&EMPTY)),
            Some(_) => {
                self.err(path, "must be an object");
                None
            }
        }
    }

    pub fn string(&mut self, parent: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match parent.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                self.err(path, "must not be empty");
                None
            }
            None | Some(Value::Null) => {
                self.err(path, "is required");
                None
            }
            Some(_) => {
                self.err(path, "must be a string");
                None
            }
        }
    }

    pub fn optional_string(&mut self, parent: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match parent.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(path, "must be a string");
                None
            }
        }
    }

    pub fn check<T>(
        &mut self,
        path: &str,
        value: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let v = value?;
        parse(&v).map_err(|m| self.err(path, m)).ok()
    }
}
