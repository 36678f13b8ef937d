//! The balance ledger: double entry. Every movement is a balanced pair of
//! postings (they sum to zero); a wallet's balances are sums of its postings.
//!
//! A project has a wallet per [`Book`] (its payout balance, its nominal
//! (escrow) account, its settlement account) and currency. Accounts of a
//! wallet: `available` and `reserved` (the partner's money), `funding` (money
//! that came in from outside by top-ups), `payouts` (money that left to
//! recipients), `held` (customers' card payments authorized but not captured
//! yet: not available), `acquiring` (the card networks' side of payments, the
//! counterpart of money coming in: captures come from it, refunds and
//! chargebacks go back to it), `fees` (the bank's fee on captured payments),
//! `contractors` (split payments' parts passed on to the project's
//! contractors: the control account of their wallets, each contractor's
//! balance kept beside it, so the account always equals their sum) and `exchange` (money converted to or from another currency:
//! a payout in dollars funded in roubles moves roubles into the rouble
//! wallet's exchange account and dollars out of the dollar wallet's). Funding,
//! exchange and acquiring carry the counter-totals, so a wallet's accounts
//! always sum to zero.
//!
//! Invariant: every posting pair sums to zero within one wallet; a conversion
//! is two pairs, one per currency ([`legs`]).

/// Ledger account of one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    Available,
    Reserved,
    Funding,
    Payouts,
    Exchange,
    Held,
    Acquiring,
    Fees,
    Contractors,
}

impl Account {
    pub const ALL: [Account; 9] = [
        Self::Available,
        Self::Reserved,
        Self::Funding,
        Self::Payouts,
        Self::Exchange,
        Self::Held,
        Self::Acquiring,
        Self::Fees,
        Self::Contractors,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::Funding => "funding",
            Self::Payouts => "payouts",
            Self::Exchange => "exchange",
            Self::Held => "held",
            Self::Acquiring => "acquiring",
            Self::Fees => "fees",
            Self::Contractors => "contractors",
        }
    }
}

/// Which of a project's accounts at the bank a wallet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Book {
    /// The payout balance (`wallet/balance`): ordinary payouts.
    Main,
    /// The nominal (escrow) account: `…/nominal` payouts, `account_balance`.
    Nominal,
    /// The settlement account ("RKO"): `…/rko` payouts.
    Settlement,
}

impl Book {
    pub const ALL: [Book; 3] = [Self::Main, Self::Nominal, Self::Settlement];

    /// The stored name, also the CLI's and the admin API's.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Nominal => "nominal",
            Self::Settlement => "settlement",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Movement {
    TopUp,
    Reserve,
    Debit,
    Release,
    Return,
    /// A converted payout's debit, funding side: reserved money sold.
    ExchangeOut,
    /// A converted payout's debit, paid side: the bought money leaves.
    ExchangeIn,
    /// A converted payout returned, paid side: the money comes back to exchange.
    ReturnToExchange,
    /// A converted payout returned, funding side: converted back to available.
    ReturnFromExchange,
    /// A card payment authorized: the customer's money held, not available yet.
    Hold,
    /// A held payment captured (in whole or in part) into the available balance.
    Capture,
    /// A hold, or the part of it not captured, given back to the customer.
    ReleaseHold,
    /// The bank's fee on a captured payment, out of the available balance.
    Fee,
    /// A refund (or chargeback) reserved at its request paid back to the customer's card.
    Refund,
    /// A split payment's part passed on to a contractor's wallet.
    SplitOut,
    /// A contractor's part taken back for a refund (in proportion to it).
    SplitBack,
}

impl Movement {
    /// Whether it moves a card payment's money (else a payout's or a top-up's).
    pub fn is_acquiring(self) -> bool {
        matches!(
            self,
            Self::Hold
                | Self::Capture
                | Self::ReleaseHold
                | Self::Fee
                | Self::Refund
                | Self::SplitOut
                | Self::SplitBack
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "topup",
            Self::Reserve => "reserve",
            Self::Debit => "debit",
            Self::Release => "release",
            Self::Return => "return",
            Self::ExchangeOut => "exchange_out",
            Self::ExchangeIn => "exchange_in",
            Self::ReturnToExchange => "return_to_exchange",
            Self::ReturnFromExchange => "return_from_exchange",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::ReleaseHold => "release_hold",
            Self::Fee => "fee",
            Self::Refund => "refund",
            Self::SplitOut => "split_out",
            Self::SplitBack => "split_back",
        }
    }

    pub const ALL: [Movement; 16] = [
        Self::TopUp,
        Self::Reserve,
        Self::Debit,
        Self::Release,
        Self::Return,
        Self::ExchangeOut,
        Self::ExchangeIn,
        Self::ReturnToExchange,
        Self::ReturnFromExchange,
        Self::Hold,
        Self::Capture,
        Self::ReleaseHold,
        Self::Fee,
        Self::Refund,
        Self::SplitOut,
        Self::SplitBack,
    ];

    /// The movement named `text` (as stored).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
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
        Movement::ExchangeOut => (Account::Reserved, Account::Exchange),
        Movement::ExchangeIn => (Account::Exchange, Account::Payouts),
        Movement::ReturnToExchange => (Account::Payouts, Account::Exchange),
        Movement::ReturnFromExchange => (Account::Exchange, Account::Available),
        Movement::Hold => (Account::Acquiring, Account::Held),
        Movement::Capture => (Account::Held, Account::Available),
        Movement::ReleaseHold => (Account::Held, Account::Acquiring),
        Movement::Fee => (Account::Available, Account::Fees),
        Movement::Refund => (Account::Reserved, Account::Acquiring),
        Movement::SplitOut => (Account::Available, Account::Contractors),
        Movement::SplitBack => (Account::Contractors, Account::Available),
    };
    [Posting { account: from, amount: -amount }, Posting { account: to, amount }]
}

/// The accounts that must never go negative.
pub fn must_stay_non_negative(account: Account) -> bool {
    matches!(account, Account::Available | Account::Reserved | Account::Payouts | Account::Held | Account::Contractors)
}

/// A wallet's balances, the sum of its postings per account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    pub available: i64,
    pub reserved: i64,
    pub funding: i64,
    pub payouts: i64,
    pub exchange: i64,
    pub held: i64,
    pub acquiring: i64,
    pub fees: i64,
    pub contractors: i64,
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
            Account::Exchange => &mut self.exchange,
            Account::Held => &mut self.held,
            Account::Acquiring => &mut self.acquiring,
            Account::Fees => &mut self.fees,
            Account::Contractors => &mut self.contractors,
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
        self.available
            + self.reserved
            + self.funding
            + self.payouts
            + self.exchange
            + self.held
            + self.acquiring
            + self.fees
            + self.contractors
    }
}

/// One movement on one wallet: the unit the store applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub book: Book,
    pub currency: String,
    pub movement: Movement,
    pub amount: i64,
    /// The contractor whose wallet a split movement credits or debits (the
    /// other side of the project's `contractors` account); `None` otherwise.
    pub contractor: Option<String>,
    /// The operation whose money it moves (a payout, payment or refund id),
    /// which the registers name; `None` for a top-up.
    pub operation: Option<String>,
}

impl Leg {
    /// A movement of the project's own wallet (no contractor's).
    pub fn own(book: Book, currency: &str, movement: Movement, amount: i64) -> Self {
        Self { book, currency: currency.to_string(), movement, amount, contractor: None, operation: None }
    }

    /// The same leg, made by the operation `id`.
    pub fn of(self, id: &str) -> Self {
        Self { operation: Some(id.to_string()), ..self }
    }

    /// What the movement does to its contractor's wallet: the change of the
    /// project's `contractors` account (a split part out is `+amount`).
    pub fn contractor_delta(&self) -> i64 {
        postings(self.movement, self.amount)
            .iter()
            .filter(|p| p.account == Account::Contractors)
            .map(|p| p.amount)
            .sum()
    }
}

/// How a payout is funded: the book it is paid from, what the recipient gets,
/// and, when converted, what it costs in the funding currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funding {
    pub book: Book,
    pub paid: (i64, String),
    pub charged: Option<(i64, String)>,
}

/// The legs of a lifecycle's movement for a payout funded as `f`. A payout in
/// its own currency is one leg; a converted one reserves and releases in the
/// funding currency and debits or returns in both, through `exchange`.
pub fn legs(movement: Movement, f: &Funding) -> Vec<Leg> {
    let leg = |(amount, currency): &(i64, String), movement| Leg::own(f.book, currency, movement, *amount);
    let Some(charged) = &f.charged else { return vec![leg(&f.paid, movement)] };
    match movement {
        Movement::Debit => vec![leg(charged, Movement::ExchangeOut), leg(&f.paid, Movement::ExchangeIn)],
        Movement::Return => {
            vec![leg(&f.paid, Movement::ReturnToExchange), leg(charged, Movement::ReturnFromExchange)]
        }
        other => vec![leg(charged, other)],
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
            Just(Movement::Return),
            Just(Movement::ExchangeOut),
            Just(Movement::ExchangeIn),
            Just(Movement::ReturnToExchange),
            Just(Movement::ReturnFromExchange),
            Just(Movement::Hold),
            Just(Movement::Capture),
            Just(Movement::ReleaseHold),
            Just(Movement::Fee),
            Just(Movement::Refund),
            Just(Movement::SplitOut),
            Just(Movement::SplitBack)
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
                prop_assert!(balances.available >= 0 && balances.reserved >= 0 && balances.payouts >= 0 && balances.held >= 0 && balances.contractors >= 0);
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

    fn apply_legs(wallets: &mut std::collections::BTreeMap<String, Balances>, legs: Vec<Leg>) {
        for l in legs {
            let w = wallets.entry(l.currency.clone()).or_default();
            *w = w.apply(l.movement, l.amount).unwrap();
        }
    }

    #[test]
    fn a_converted_payout_posts_in_both_currencies_and_each_wallet_balances() {
        let f = Funding { book: Book::Main, paid: (100, "usd".into()), charged: Some((9_250, "rub".into())) };
        let mut wallets = std::collections::BTreeMap::new();
        wallets.insert("rub".to_string(), Balances::default().apply(Movement::TopUp, 10_000).unwrap());
        for m in [Movement::Reserve, Movement::Debit] {
            apply_legs(&mut wallets, legs(m, &f));
        }
        let (rub, usd) = (wallets["rub"], wallets["usd"]);
        assert_eq!((rub.available, rub.reserved, rub.exchange), (750, 0, 9_250));
        assert_eq!((usd.payouts, usd.exchange), (100, -100));
        apply_legs(&mut wallets, legs(Movement::Return, &f));
        let (rub, usd) = (wallets["rub"], wallets["usd"]);
        assert_eq!((rub.available, rub.exchange, usd.payouts, usd.exchange), (10_000, 0, 0, 0));
        assert!(wallets.values().all(|w| w.total() == 0));
        // A payout in its own currency is one leg of the movement itself.
        let own = Funding { book: Book::Nominal, paid: (5, "rub".into()), charged: None };
        assert_eq!(legs(Movement::Debit, &own), [Leg::own(Book::Nominal, "rub", Movement::Debit, 5)]);
        assert!(Book::ALL.iter().all(|b| Book::parse(b.as_str()) == Some(*b)));
        assert!(Movement::ALL.iter().all(|m| Movement::parse(m.as_str()) == Some(*m)));
    }
}
