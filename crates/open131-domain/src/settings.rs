//! A project's settings as types: parsed once when the project is loaded (or
//! when an operator changes them), never compared as strings in handlers.

use std::collections::BTreeSet;
use std::fmt;

/// How a project's passport checks are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KycMode {
    /// The documented sandbox triggers decide.
    #[default]
    Sandbox,
    /// The MVD list and the taxpayer registry decide.
    Registry,
}

impl KycMode {
    /// Every mode, in the order the CLI lists them.
    pub const ALL: [KycMode; 2] = [KycMode::Sandbox, KycMode::Registry];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Registry => "registry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for KycMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most methods one list may name.
pub const METHOD_SET_MAX_ENTRIES: usize = 128;
/// Longest method name in a list, in bytes.
pub const METHOD_NAME_MAX_BYTES: usize = 128;

/// The items of a setting written as `*` or a comma-separated list: `None` for
/// `*`, else the trimmed, non-empty items. The one place for that syntax.
pub(crate) fn list_items(text: &str) -> Option<impl Iterator<Item = &str>> {
    let text = text.trim();
    (text != "*").then(|| text.split(',').map(str::trim).filter(|item| !item.is_empty()))
}

/// Lower-case words (letters, digits, `_`) joined by `/`, at most [`METHOD_NAME_MAX_BYTES`].
fn is_method_name(m: &str) -> bool {
    let word = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    m.len() <= METHOD_NAME_MAX_BYTES && m.split('/').all(word)
}

/// Why a method list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodSetError {
    #[error("{0:?} is not a method name (lower-case words joined by '/')")]
    BadName(String),
    #[error("a method list is `*` or at least one method")]
    Empty,
    #[error("at most {METHOD_SET_MAX_ENTRIES} methods")]
    TooMany,
}

/// The main-API methods a project may call: every method, or the ones listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MethodSet {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl MethodSet {
    /// Parses `*` or a comma-separated list of method paths (`session/init/payout`).
    pub fn parse(text: &str) -> Result<Self, MethodSetError> {
        let Some(items) = list_items(text) else { return Ok(Self::All) };
        let mut methods = BTreeSet::new();
        for m in items {
            if !is_method_name(m) {
                return Err(MethodSetError::BadName(m.to_string()));
            }
            methods.insert(m.to_string());
        }
        if methods.is_empty() {
            return Err(MethodSetError::Empty);
        }
        if methods.len() > METHOD_SET_MAX_ENTRIES {
            return Err(MethodSetError::TooMany);
        }
        Ok(Self::Only(methods))
    }

    pub fn allows(&self, method: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(methods) => methods.contains(method),
        }
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(methods) => write_list(f, methods),
        }
    }
}

/// Writes `items` comma-separated: the list form [`list_items`] reads.
pub(crate) fn write_list<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl IntoIterator<Item = T>,
) -> fmt::Result {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kyc_modes_round_trip_and_unknown_names_are_refused() {
        for m in KycMode::ALL {
            assert_eq!(KycMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(KycMode::parse("Registry"), None);
        assert_eq!(KycMode::default(), KycMode::Sandbox);
    }

    #[test]
    fn method_sets_parse_once_and_print_back() {
        assert!(MethodSet::parse("*").unwrap().allows("session/init/payout"));
        let only = MethodSet::parse(" session/init/payout , wallet/balance").unwrap();
        assert!(only.allows("wallet/balance"));
        assert!(!only.allows("session/confirm"));
        assert_eq!(MethodSet::parse(&only.to_string()).unwrap(), only);
        for bad in ["", ",", "Session/init", "session//init", "a b"] {
            assert!(MethodSet::parse(bad).is_err(), "{bad:?}");
        }
    }
}
