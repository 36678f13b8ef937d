//! Split payments (`revenue_split_info`): parts of a card payment paid to the
//! project's contractors, each into the contractor's own wallet.
//!
//! Each part names a contractor (`contractor_alias`, registered for the
//! project beforehand, the `contractors` setting) and either a `percent` (a
//! decimal string, as the SDK sends it, or a number; at most two decimals) or
//! `remains: true` (what the other parts leave). Decisions `[INF]`, in the
//! README: the parts are shares of what the payment brings in, its captured
//! amount net of the bank's fee, worked out when it is captured (a partial
//! capture splits what was captured); a part's `amount` is the bank's answer,
//! never the partner's. A refund (or chargeback) takes back from each
//! contractor its share of the refund: after refunds totalling `R` of a
//! capture `C`, a part `p` has given back `floor(p × R / C)`, so refunding the
//! whole gives back each part exactly.
//!
//! Invariant: the parts of a capture sum to at most its net amount, and a
//! contractor never gives back more than its part.

use serde_json::{json, Map, Value};

use crate::fields::{present, Fields};
use crate::settings::is_set_name;

/// Most parts one payment may be split into.
pub const SPLIT_PARTS_MAX: usize = 20;
/// A whole, in hundredths of a percent.
const WHOLE_BP: u32 = 10_000;

/// A part's share: hundredths of a percent, or what the others leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// 1 to 10 000 hundredths of a percent.
    Percent(u32),
    Remains,
}

/// One part of a split payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPart {
    pub contractor: String,
    pub share: Share,
    /// Minor units, worked out at capture.
    pub amount: Option<i64>,
}

/// The parts of a split payment, in the order the partner sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    parts: Vec<SplitPart>,
}

/// What one refund took back from each contractor, in the parts' order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken(pub Vec<(String, i64)>);

/// Parses `revenue_split_info` (at `path`), every bad field named at once.
/// An empty list is no split (a client may always send the field).
pub(crate) fn parse(f: &mut Fields<'_>, value: &Value, path: &str) -> Option<Split> {
    let Some(items) = value.as_array() else {
        f.err(path, "must be a list of {contractor_alias, percent | remains}");
        return None;
    };
    if items.is_empty() {
        return None;
    }
    if items.len() > SPLIT_PARTS_MAX {
        f.err(path, format!("must hold at most {SPLIT_PARTS_MAX} parts"));
        return None;
    }
    let before = f.errors.len();
    let parts: Vec<SplitPart> =
        items.iter().enumerate().filter_map(|(i, item)| part(f, item, &format!("{path}[{i}]"))).collect();
    if f.errors.len() > before || parts.len() != items.len() {
        return None;
    }
    check_whole(f, &parts, path).then_some(Split { parts })
}

fn part(f: &mut Fields<'_>, item: &Value, path: &str) -> Option<SplitPart> {
    let Some(item) = item.as_object() else {
        f.err(path, "must be an object");
        return None;
    };
    let refused = [("amount", "is worked out by the bank when the payment is captured: send percent or remains")];
    f.only(item, path, &["contractor_alias", "percent", "remains"], &refused);
    let alias_path = format!("{path}.contractor_alias");
    let contractor = f.string(item, "contractor_alias", &alias_path);
    if contractor.as_deref().is_some_and(|a| !is_set_name(a)) {
        f.err(&alias_path, "must be 1 to 64 visible ASCII characters without a comma");
    }
    let remains = match item.get("remains") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            f.err(&format!("{path}.remains"), "must be true or false");
            return None;
        }
    };
    let share = match (remains, present(item, "percent")) {
        (true, true) => {
            f.err(&format!("{path}.percent"), "a part takes a percent or the remains, not both");
            None
        }
        (true, false) => Some(Share::Remains),
        (false, false) => {
            f.err(&format!("{path}.percent"), "is required unless remains is true");
            None
        }
        (false, true) => percent(item.get("percent")).map(Share::Percent).or_else(|| {
            f.err(&format!("{path}.percent"), "must be a percentage above 0 and at most 100, e.g. \"12.5\"");
            None
        }),
    };
    Some(SplitPart { contractor: contractor?, share: share?, amount: None })
}

/// A percentage as hundredths of a percent: a decimal string or a number,
/// above 0, at most 100, at most two decimals.
fn percent(value: Option<&Value>) -> Option<u32> {
    let text = match value? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 3 || fraction.len() > 2 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let bp = whole.parse::<u32>().ok()? * 100 + format!("{fraction:0<2}").parse::<u32>().ok()?;
    (1..=WHOLE_BP).contains(&bp).then_some(bp)
}

/// The parts together: each contractor once, one remains at most, the
/// percents within the whole (and leaving something for a remains part).
fn check_whole(f: &mut Fields<'_>, parts: &[SplitPart], path: &str) -> bool {
    for (i, p) in parts.iter().enumerate() {
        if parts[..i].iter().any(|q| q.contractor == p.contractor) {
            f.err(&format!("{path}[{i}].contractor_alias"), "names a contractor twice: one part each");
            return false;
        }
    }
    if parts.iter().filter(|p| p.share == Share::Remains).count() > 1 {
        f.err(path, "at most one part takes the remains");
        return false;
    }
    let total: u32 = parts.iter().map(|p| if let Share::Percent(bp) = p.share { bp } else { 0 }).sum();
    let has_remains = parts.iter().any(|p| p.share == Share::Remains);
    if total > WHOLE_BP || (has_remains && total == WHOLE_BP) {
        let shown = percent_text(total);
        let why = if has_remains {
            format!("the percents sum to {shown}%: with a remains part they must leave something (below 100%)")
        } else {
            format!("the percents sum to {shown}%: at most 100%")
        };
        f.err(path, why);
        return false;
    }
    true
}

/// Hundredths of a percent as the SDK writes a percent: `"12.5"`, `"10"`.
fn percent_text(bp: u32) -> String {
    let (whole, fraction) = (bp / 100, bp % 100);
    match fraction {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// `floor(a × b / c)` without overflow (`c > 0`).
fn mul_div(a: i64, b: i64, c: i64) -> i64 {
    i64::try_from(i128::from(a) * i128::from(b) / i128::from(c)).unwrap_or(i64::MAX)
}

impl Split {
    pub fn parts(&self) -> &[SplitPart] {
        &self.parts
    }

    /// The contractors it pays.
    pub fn contractors(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.contractor.as_str())
    }

    /// Works out each part of a capture that brought in `net` (captured less
    /// the fee): percents rounded down, the remains part taking what is left.
    pub fn settle(&mut self, net: i64) {
        let net = net.max(0);
        for p in &mut self.parts {
            if let Share::Percent(bp) = p.share {
                p.amount = Some(mul_div(net, i64::from(bp), i64::from(WHOLE_BP)));
            }
        }
        let given: i64 = self.parts.iter().filter_map(|p| p.amount).sum();
        for p in self.parts.iter_mut().filter(|p| p.share == Share::Remains) {
            p.amount = Some(net - given);
        }
    }

    /// What a refund of `refund` takes back from each contractor:
    /// `refunded_after` is every refund of the payment that counts (not
    /// declined), this one included, of a capture of `captured`;
    /// `taken_before` what those others took back. The total is the parts'
    /// share of the refunds, less what was taken: never more than the refund
    /// itself (the parts sum to at most the capture), each part's own share
    /// rounded and the rounding settled on the parts with room left.
    pub fn take_back(&self, captured: i64, refunded_after: i64, refund: i64, taken_before: &[&Taken]) -> Taken {
        let (captured, cum) = (captured.max(1), refunded_after.clamp(0, captured.max(1)));
        let parts: Vec<(&str, i64, i64)> = self
            .parts
            .iter()
            .filter_map(|p| {
                let already: i64 =
                    taken_before.iter().flat_map(|t| &t.0).filter(|(a, _)| *a == p.contractor).map(|(_, n)| n).sum();
                Some((p.contractor.as_str(), p.amount?, already))
            })
            .collect();
        let (whole, already): (i64, i64) = parts.iter().fold((0, 0), |(w, a), (_, part, took)| (w + part, a + took));
        let total = (mul_div(whole, cum, captured) - already).clamp(0, refund.max(0));
        let mut taken: Vec<i64> = parts
            .iter()
            .map(|(_, part, took)| (mul_div(*part, cum, captured) - took).clamp(0, (part - took).max(0)))
            .collect();
        let room = |i: usize, taken: &[i64]| parts[i].1 - parts[i].2 - taken[i];
        // The parts' own roundings differ from the total's by at most a kopeck each.
        while taken.iter().sum::<i64>() > total {
            let Some(i) = (0..taken.len()).filter(|i| taken[*i] > 0).max_by_key(|i| taken[*i]) else { break };
            taken[i] -= 1;
        }
        while taken.iter().sum::<i64>() < total {
            let Some(i) = (0..taken.len()).filter(|i| room(*i, &taken) > 0).max_by_key(|i| room(*i, &taken)) else {
                break;
            };
            taken[i] += 1;
        }
        Taken(parts.iter().zip(taken).map(|((alias, _, _), n)| (alias.to_string(), n)).collect())
    }

    /// The wire's `revenue_split_info` (amounts once captured).
    pub fn wire(&self, currency: &str) -> Value {
        Value::Array(
            self.parts
                .iter()
                .map(|p| {
                    let mut item = Map::new();
                    item.insert("contractor_alias".into(), json!(p.contractor));
                    match p.share {
                        Share::Percent(bp) => {
                            item.insert("percent".into(), json!(percent_text(bp)));
                            item.insert("remains".into(), json!(false));
                        }
                        Share::Remains => {
                            item.insert("remains".into(), json!(true));
                        }
                    }
                    if let Some(amount) = p.amount {
                        item.insert("amount".into(), json!({"amount": amount, "currency": currency}));
                    }
                    Value::Object(item)
                })
                .collect(),
        )
    }

    /// As stored: `[{c, bp | remains, amount}]` (JSON).
    pub fn stored(&self) -> String {
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|p| {
                let bp = match p.share {
                    Share::Percent(bp) => json!(bp),
                    Share::Remains => Value::Null,
                };
                json!({"c": p.contractor, "bp": bp, "amount": p.amount})
            })
            .collect();
        Value::Array(parts).to_string()
    }

    pub fn parse_stored(text: &str) -> Option<Self> {
        let parts = serde_json::from_str::<Value>(text).ok()?;
        let parts = parts
            .as_array()?
            .iter()
            .map(|p| {
                let share = match p.get("bp")? {
                    Value::Null => Share::Remains,
                    bp => Share::Percent(u32::try_from(bp.as_u64()?).ok()?),
                };
                let amount = match p.get("amount")? {
                    Value::Null => None,
                    n => Some(n.as_i64()?),
                };
                Some(SplitPart { contractor: p.get("c")?.as_str()?.to_string(), share, amount })
            })
            .collect::<Option<Vec<_>>>()?;
        (!parts.is_empty()).then_some(Self { parts })
    }
}

impl Taken {
    /// The wire's `revenue_split_info` of a refund.
    pub fn wire(&self, currency: &str) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(alias, n)| json!({"contractor_alias": alias, "amount": {"amount": n, "currency": currency}}))
                .collect(),
        )
    }

    pub fn total(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// As stored: `[[alias, amount]]` (JSON).
    pub fn stored(&self) -> String {
        Value::Array(self.0.iter().map(|(a, n)| json!([a, n])).collect()).to_string()
    }

    pub fn parse_stored(text: &str) -> Option<Self> {
        let items = serde_json::from_str::<Value>(text).ok()?;
        let items = items.as_array()?.iter().map(|i| Some((i.get(0)?.as_str()?.to_string(), i.get(1)?.as_i64()?)));
        items.collect::<Option<Vec<_>>>().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldError;

    fn parsed(v: Value) -> Result<Split, Vec<FieldError>> {
        let mut errors = Vec::new();
        let split = parse(&mut Fields { errors: &mut errors }, &v, "revenue_split_info");
        match split {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(errors),
        }
    }

    fn fields(r: Result<Split, Vec<FieldError>>) -> Vec<String> {
        r.err().unwrap_or_default().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_sdk_form_parses_and_settles_on_the_net_amount() {
        let mut s = parsed(json!([
            {"contractor_alias": "test1", "percent": "10", "remains": false},
            {"contractor_alias": "test2", "percent": null, "remains": true},
            {"contractor_alias": "test3", "percent": 12.5}
        ]))
        .unwrap();
        assert_eq!(s.parts()[2].share, Share::Percent(1_250));
        s.settle(9_999);
        let amounts: Vec<_> = s.parts().iter().map(|p| p.amount.unwrap()).collect();
        // 10% and 12.5% rounded down; the remains takes the rest, rounding included.
        assert_eq!(amounts, [999, 9_999 - 999 - 1_249, 1_249]);
        assert_eq!(amounts.iter().sum::<i64>(), 9_999);
        assert_eq!(Split::parse_stored(&s.stored()), Some(s.clone()));
        let wire = s.wire("rub");
        assert_eq!(wire[2]["percent"], "12.5");
        assert_eq!(
            wire[1],
            json!({"contractor_alias": "test2", "remains": true, "amount": {"amount": 7_751, "currency": "rub"}})
        );
    }

    #[test]
    fn bad_parts_are_named() {
        assert_eq!(fields(parsed(json!({}))), ["revenue_split_info"]);
        assert_eq!(fields(parsed(json!(Vec::<Value>::new()))), Vec::<String>::new(), "an empty list is no split");
        assert_eq!(
            fields(parsed(json!((0..21)
                .map(|i| json!({"contractor_alias": format!("c{i}"), "percent": "1"}))
                .collect::<Vec<_>>()))),
            ["revenue_split_info"]
        );
        let bad = json!([
            {"contractor_alias": "a", "percent": "0"},
            {"contractor_alias": "b", "percent": "100.001"},
            {"contractor_alias": "c", "percent": "10", "remains": true},
            {"contractor_alias": "d"},
            {"contractor_alias": "e,f", "percent": "1"},
            {"percent": "1"},
            {"contractor_alias": "g", "percent": "1", "amount": {"amount": 5, "currency": "rub"}},
            {"contractor_alias": "h", "percent": "-1"},
            "x"
        ]);
        assert_eq!(
            fields(parsed(bad)),
            [
                "revenue_split_info[0].percent",
                "revenue_split_info[1].percent",
                "revenue_split_info[2].percent",
                "revenue_split_info[3].percent",
                "revenue_split_info[4].contractor_alias",
                "revenue_split_info[5].contractor_alias",
                "revenue_split_info[6].amount",
                "revenue_split_info[7].percent",
                "revenue_split_info[8]"
            ]
        );
        let twice = json!([{"contractor_alias": "a", "percent": "1"}, {"contractor_alias": "a", "percent": "2"}]);
        assert_eq!(fields(parsed(twice)), ["revenue_split_info[1].contractor_alias"]);
        let two_remains =
            json!([{"contractor_alias": "a", "remains": true}, {"contractor_alias": "b", "remains": true}]);
        assert_eq!(fields(parsed(two_remains)), ["revenue_split_info"]);
        let over = json!([{"contractor_alias": "a", "percent": "60"}, {"contractor_alias": "b", "percent": "40.01"}]);
        assert_eq!(fields(parsed(over)), ["revenue_split_info"]);
        let whole = json!([{"contractor_alias": "a", "percent": "100"}, {"contractor_alias": "b", "remains": true}]);
        assert_eq!(fields(parsed(whole)), ["revenue_split_info"]);
        assert!(parsed(json!([{"contractor_alias": "a", "percent": "100"}])).is_ok());
    }

    #[test]
    fn refunds_take_back_in_proportion_and_the_whole_exactly() {
        let mut s =
            parsed(json!([{"contractor_alias": "a", "percent": "33.33"}, {"contractor_alias": "b", "remains": true}]))
                .unwrap();
        s.settle(1_000);
        let parts: Vec<i64> = s.parts().iter().map(|p| p.amount.unwrap()).collect();
        assert_eq!(parts, [333, 667]);
        // Refunds of 1, 333 and the rest of a 1 000 capture.
        let mut taken: Vec<Taken> = Vec::new();
        let mut refunded = 0;
        for r in [1, 333, 666] {
            refunded += r;
            let t = s.take_back(1_000, refunded, r, &taken.iter().collect::<Vec<_>>());
            assert!(t.total() <= r, "{t:?} of a refund of {r}");
            taken.push(t);
        }
        let back =
            |alias: &str| taken.iter().flat_map(|t| &t.0).filter(|(a, _)| a == alias).map(|(_, n)| n).sum::<i64>();
        assert_eq!((back("a"), back("b")), (333, 667));
        // A kopeck refunded: the parts' share of it rounds to a kopeck, taken from the larger.
        assert_eq!(taken[0].0, [("a".to_string(), 0), ("b".to_string(), 1)]);
        // 334 of 1 000 refunded in all: 334 back in all, 333 of them now.
        assert_eq!(taken[1].0, [("a".to_string(), 111), ("b".to_string(), 222)]);
        assert_eq!(Taken::parse_stored(&taken[1].stored()), Some(taken[1].clone()));
    }

    /// The review's case: parts that cover the whole capture, refunded in
    /// 9.99 then 0.01, never take back more than a refund.
    #[test]
    fn no_refund_takes_back_more_than_itself() {
        let mut s =
            parsed(json!([{"contractor_alias": "a", "percent": "33.33"}, {"contractor_alias": "b", "remains": true}]))
                .unwrap();
        s.settle(1_000);
        let first = s.take_back(1_000, 999, 999, &[]);
        let last = s.take_back(1_000, 1_000, 1, &[&first]);
        assert!(first.total() <= 999 && last.total() <= 1, "{first:?} {last:?}");
        assert_eq!(first.total() + last.total(), 1_000, "the whole comes back");
        for alias in ["a", "b"] {
            let back: i64 = [&first, &last].iter().flat_map(|t| &t.0).filter(|(a, _)| a == alias).map(|(_, n)| n).sum();
            let part = s.parts().iter().find(|p| p.contractor == alias).unwrap().amount.unwrap();
            assert_eq!(back, part, "{alias}");
        }
        // Random refund sequences: each within its refund, each part back exactly at the end.
        let mut seed = 7u64;
        for _ in 0..200 {
            let mut rest = 1_000;
            let mut taken: Vec<Taken> = Vec::new();
            while rest > 0 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let r = (1 + (seed >> 33) as i64 % 300).min(rest);
                rest -= r;
                let t = s.take_back(1_000, 1_000 - rest, r, &taken.iter().collect::<Vec<_>>());
                assert!(t.total() <= r);
                taken.push(t);
            }
            let all: i64 = taken.iter().map(Taken::total).sum();
            assert_eq!(all, 1_000);
        }
    }
}
