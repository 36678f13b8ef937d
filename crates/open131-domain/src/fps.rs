//! The participants of the Faster Payments System (SBP) that `fps/banks`
//! lists and FPS payouts are checked against: a data file in the repository
//! (`data/fps_banks.csv`, its sources in `data/fps_banks.md`), compiled in
//! and parsed once.

use std::sync::LazyLock;

/// The list as shipped: `id,eng_name,ru_name,source`, RFC 4180 quoting.
const FPS_BANKS_CSV: &str = include_str!("../data/fps_banks.csv");

/// One participant of the FPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpsBank {
    /// The member id (`1000000000xx`), `bank_id` in requests.
    pub id: String,
    pub eng_name: String,
    pub ru_name: String,
}

static BANKS: LazyLock<Vec<FpsBank>> = LazyLock::new(|| parse(FPS_BANKS_CSV));

/// Every participant, sorted by id.
pub fn banks() -> &'static [FpsBank] {
    &BANKS
}

/// The participant with this member id.
pub fn bank(id: &str) -> Option<&'static FpsBank> {
    let banks = banks();
    banks.binary_search_by(|b| b.id.as_str().cmp(id)).ok().map(|i| &banks[i])
}

/// Reads `bank_id` of `map` (at `path`): a member id of the list, or an error
/// naming the list's size. The one check of every FPS request.
pub(crate) fn read_bank_id(
    f: &mut crate::fields::Fields<'_>,
    map: &serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Option<String> {
    let field = crate::fields::join(path, "bank_id");
    let id = f.string(map, "bank_id", &field)?;
    if bank(&id).is_none() {
        f.err(&field, format!("is not one of the {} banks of fps/banks", banks().len()));
        return None;
    }
    Some(id)
}

/// Rows of the shipped file; a malformed row is skipped (the tests below
/// prove the shipped file has none).
fn parse(text: &str) -> Vec<FpsBank> {
    let mut banks: Vec<FpsBank> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = split_csv_line(line).into_iter();
            let (id, eng_name, ru_name) = (fields.next()?, fields.next()?, fields.next()?);
            Some(FpsBank { id, eng_name, ru_name })
        })
        .collect();
    banks.sort_by(|a, b| a.id.cmp(&b.id));
    banks
}

/// Fields of one RFC 4180 line: quoted fields may hold commas and `""`.
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_is_whole_and_well_formed() {
        let rows = FPS_BANKS_CSV.lines().skip(1).filter(|l| !l.is_empty()).count();
        assert_eq!(banks().len(), rows, "every row parses");
        assert!(rows > 200, "the real participants, not a sample");
        for pair in banks().windows(2) {
            assert!(pair[0].id < pair[1].id, "ids unique and sorted: {}", pair[1].id);
        }
        for b in banks() {
            assert!(b.id.len() == 12 && b.id.bytes().all(|c| c.is_ascii_digit()), "{b:?}");
            assert!(!b.eng_name.is_empty() && !b.ru_name.is_empty(), "{b:?}");
        }
    }

    #[test]
    fn known_members_are_found() {
        assert_eq!(bank("100000000069").map(|b| b.ru_name.as_str()), Some("СДМ-Банк"));
        assert_eq!(bank("100000000111").map(|b| b.eng_name.as_str()), Some("SBER"));
        assert!(bank("100000000143").is_some(), "Bank 131 itself");
        assert!(bank("100000000000").is_none());
        assert!(banks().iter().any(|b| b.eng_name.contains(", ")), "a quoted field with a comma");
    }

    #[test]
    fn quoted_fields() {
        assert_eq!(split_csv_line(r#"1,"a, ""b""",c"#), vec!["1", r#"a, "b""#, "c"]);
    }
}
