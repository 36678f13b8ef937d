//! A wrapper for personal data and secrets: `Debug` and `Display` print `***`,
//! so a passport number or a name can never reach a log by accident.

/// Personal data (passport numbers, INNs, names). Read it with [`Personal::expose`],
/// which makes every clear-text use greppable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<T> std::fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_prints_its_content() {
        let p = super::Personal::new("4510123456".to_string());
        assert_eq!(format!("{p:?} {p}"), "*** ***");
        assert_eq!(p.expose(), "4510123456");
    }
}
