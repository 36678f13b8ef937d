//! The balance ledger: double entry. Every movement is a balanced pair of
//! postings (they sum to zero); a wallet's balances are sums of its postings.
//!
//! Accounts per project and currency: `available` and `reserved` (the
//! partner's money), `funding` (money that came in from outside by top-ups) and
//! `payouts` (money that left to recipients). Funding carries negative totals,
//! so the four always sum to zero.

/// Ledger account of one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    Available,
    Reserved,
    Funding,
    Payouts,
}

impl Account {
    pub const ALL: [Account; 4] = [Self::Available, Self::Reserved, Self::Funding, Self::Payouts];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::Funding => "funding",
            Self::Payouts => "payouts",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Movement {
    TopUp,
    Reserve,
    Debit,
    Release,
    Return,
}

impl Movement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "topup",
            Self::Reserve => "reserve",
            Self::Debit => "debit",
            Self::Release => "release",
            Self::Return => "return",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    /// Signed minor units.
    pub amount: i64,
}

/// The two postings of a movement of `amount` (> 0).
pub fn postings(movement: Movement, amount: i64) -> [Posting; 2] {
    let (from, to) = match movement {
        Movement::TopUp => (Account::Funding, Account::Available),
        Movement::Reserve => (Account::Available, Account::Reserved),
        Movement::Debit => (Account::Reserved, Account::Payouts),
        Movement::Release => (Account::Reserved, Account::Available),
        Movement::Return => (Account::Payouts, Account::Available),
    };
    [Posting { account: from, amount: -amount }, Posting { account: to, amount }]
}

/// The accounts that must never go negative.
pub fn must_stay_non_negative(account: Account) -> bool {
    matches!(account, Account::Available | Account::Reserved | Account::Payouts)
}

/// A wallet's balances, the sum of its postings per account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    pub available: i64,
    pub reserved: i64,
    pub funding: i64,
    pub payouts: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not enough money on {0:?}")]
pub struct Insufficient(pub Account);

impl Balances {
    fn slot(&mut self, account: Account) -> &mut i64 {
        match account {
            Account::Available => &mut self.available,
            Account::Reserved => &mut self.reserved,
            Account::Funding => &mut self.funding,
            Account::Payouts => &mut self.payouts,
        }
    }

    /// Applies a movement, refusing one that would take a guarded account below zero.
    pub fn apply(self, movement: Movement, amount: i64) -> Result<Self, Insufficient> {
        let mut next = self;
        for p in postings(movement, amount) {
            let slot = next.slot(p.account);
            *slot += p.amount;
            if must_stay_non_negative(p.account) && *slot < 0 {
                return Err(Insufficient(p.account));
            }
        }
        Ok(next)
    }

    pub fn total(&self) -> i64 {
        self.available + self.reserved + self.funding + self.payouts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn movement() -> impl Strategy<Value = Movement> {
        prop_oneof![
            Just(Movement::TopUp),
            Just(Movement::Reserve),
            Just(Movement::Debit),
            Just(Movement::Release),
            Just(Movement::Return)
        ]
    }

    proptest! {
        /// Random sequences: postings always sum to zero, guarded balances never go
        /// negative, and the balances equal the sum of the postings written.
        #[test]
        fn postings_balance_and_nothing_goes_negative(ops in proptest::collection::vec((movement(), 1i64..1_000_000), 0..200)) {
            let mut balances = Balances::default();
            let mut journal: Vec<Posting> = Vec::new();
            for (m, amount) in ops {
                let pair = postings(m, amount);
                prop_assert_eq!(pair[0].amount + pair[1].amount, 0);
                if let Ok(next) = balances.apply(m, amount) {
                    balances = next;
                    journal.extend(pair);
                }
                prop_assert_eq!(balances.total(), 0);
                prop_assert!(balances.available >= 0 && balances.reserved >= 0 && balances.payouts >= 0);
                for account in Account::ALL {
                    let sum: i64 = journal.iter().filter(|p| p.account == account).map(|p| p.amount).sum();
                    let mut b = balances;
                    prop_assert_eq!(*b.slot(account), sum);
                }
            }
        }
    }

    #[test]
    fn reserve_needs_available_money() {
        let b = Balances::default().apply(Movement::TopUp, 100).unwrap();
        assert_eq!(b.apply(Movement::Reserve, 101), Err(Insufficient(Account::Available)));
        let b = b.apply(Movement::Reserve, 100).unwrap();
        assert_eq!((b.available, b.reserved), (0, 100));
        let b = b.apply(Movement::Debit, 100).unwrap();
        assert_eq!((b.reserved, b.payouts), (0, 100));
    }
}
