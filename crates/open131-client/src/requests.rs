//! Typed bodies for the main API's requests that carry more than an id: a
//! payout (to a card, a Russian bank account or by the Faster Payments
//! System; with a self-employed person's receipt details, [`Fiscalization`]),
//! a card payment, and a widget's public token ([`PublicToken`]). Each
//! builds the JSON the bank documents; anything rarer (split payments,
//! multi-sessions) is sent as a `serde_json::Value` through
//! [`crate::MainClient::call`] or [`crate::MainClient::session`].
//!
//! ```
//! use open131_client::requests::{Payout, Payment};
//! let payout = Payout::card("2200000000004940", 1_000, "rub").recipient("Иванов Иван").body();
//! assert_eq!(payout["payment_method"]["card"]["bank_card"]["number"], "2200000000004940");
//! let payment = Payment::card("4242424242424242", (12, 30), "123", 5_000, "rub", "customer-17")
//!     .return_url("https://shop.example/back")
//!     .body();
//! assert_eq!(payment["customer"]["reference"], "customer-17");
//! ```

use serde_json::{json, Value};

use open131_domain::personal::Personal;

/// `body` with the partner's metadata and the session it starts, when given.
fn with_tail(mut body: Value, metadata: Option<&str>, session_id: Option<&str>) -> Value {
    if let Some(m) = metadata {
        body["metadata"] = json!(m);
    }
    if let Some(id) = session_id {
        body["session_id"] = json!(id);
    }
    body
}

/// Where a payout goes.
#[derive(Debug, Clone)]
pub enum PayoutTo {
    /// A card, by its number.
    Card { number: Personal<String> },
    /// A Russian bank account: BIK, account number and the holder's name.
    BankAccountRu { bik: String, account: Personal<String>, full_name: Personal<String> },
    /// The Faster Payments System: the recipient's phone and bank (`fps/banks`' id).
    Fps { phone: Personal<String>, bank_id: String },
}

/// The body of `session/init/payout` (or, with [`Payout::session`],
/// `session/start/payout`).
#[derive(Debug, Clone)]
pub struct Payout {
    to: PayoutTo,
    amount: i64,
    currency: String,
    recipient: Option<Personal<String>>,
    description: Option<Personal<String>>,
    metadata: Option<String>,
    session_id: Option<String>,
    fiscalization: Option<Fiscalization>,
}

impl Payout {
    fn new(to: PayoutTo, amount: i64, currency: &str) -> Self {
        Self {
            to,
            amount,
            currency: currency.to_string(),
            recipient: None,
            description: None,
            metadata: None,
            session_id: None,
            fiscalization: None,
        }
    }

    /// A payout to a self-employed person with the receipt's details
    /// (`session/init/payout/fiscalization`).
    pub fn fiscalization(mut self, details: Fiscalization) -> Self {
        self.fiscalization = Some(details);
        self
    }

    /// The method that sends it: `init` or, naming a session, `start`;
    /// `…/fiscalization` when it carries a receipt's details.
    pub fn method(&self) -> &'static str {
        match (self.session_id.is_some(), self.fiscalization.is_some()) {
            (false, false) => "session/init/payout",
            (true, false) => "session/start/payout",
            (false, true) => "session/init/payout/fiscalization",
            (true, true) => "session/start/payout/fiscalization",
        }
    }

    /// `amount` minor units of `currency` to the card `number`.
    pub fn card(number: &str, amount: i64, currency: &str) -> Self {
        Self::new(PayoutTo::Card { number: Personal::new(number.to_string()) }, amount, currency)
    }

    /// `amount` kopecks to a Russian bank account.
    pub fn bank_account(bik: &str, account: &str, full_name: &str, amount: i64) -> Self {
        let to = PayoutTo::BankAccountRu {
            bik: bik.to_string(),
            account: Personal::new(account.to_string()),
            full_name: Personal::new(full_name.to_string()),
        };
        Self::new(to, amount, "rub")
    }

    /// `amount` kopecks by the Faster Payments System.
    pub fn fps(phone: &str, bank_id: &str, amount: i64) -> Self {
        let to = PayoutTo::Fps { phone: Personal::new(phone.to_string()), bank_id: bank_id.to_string() };
        Self::new(to, amount, "rub")
    }

    /// The recipient's full name (`participant_details.recipient.full_name`).
    pub fn recipient(mut self, full_name: &str) -> Self {
        self.recipient = Some(Personal::new(full_name.to_string()));
        self
    }

    /// The payment's purpose, for a bank account or FPS payout.
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(Personal::new(text.to_string()));
        self
    }

    /// The partner's own data, echoed back in the session and its webhooks.
    pub fn metadata(mut self, text: &str) -> Self {
        self.metadata = Some(text.to_string());
        self
    }

    /// For `session/start/payout`: the session made by `session/create`.
    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_string());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let method = match &self.to {
            PayoutTo::Card { number } => {
                json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": number.expose()}}})
            }
            PayoutTo::BankAccountRu { bik, account, full_name } => {
                let mut ru = json!({"bik": bik, "account": account.expose(), "full_name": full_name.expose()});
                if let Some(d) = &self.description {
                    ru["description"] = json!(d.expose());
                }
                json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": ru}})
            }
            PayoutTo::Fps { phone, bank_id } => {
                let mut fps = json!({"phone": phone.expose(), "bank_id": bank_id});
                if let Some(d) = &self.description {
                    fps["description"] = json!(d.expose());
                }
                json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system",
                    "faster_payment_system": fps}})
            }
        };
        let mut body = json!({"payment_method": method,
            "amount_details": {"amount": self.amount, "currency": self.currency}});
        if let Some(name) = &self.recipient {
            body["participant_details"] = json!({"recipient": {"full_name": name.expose()}});
        }
        if let Some(f) = &self.fiscalization {
            body["fiscalization_details"] = f.details();
        }
        with_tail(body, self.metadata.as_deref(), self.session_id.as_deref())
    }
}

/// The body of `session/init/payment` (or, with [`Payment::session`],
/// `session/start/payment`): a card payment.
#[derive(Debug, Clone)]
pub struct Payment {
    number: Personal<String>,
    expiry: (u8, u16),
    security_code: Personal<String>,
    amount: i64,
    currency: String,
    customer: String,
    return_url: Option<String>,
    save_card: bool,
    metadata: Option<String>,
    session_id: Option<String>,
}

impl Payment {
    /// `amount` minor units of `currency` from the card `number` expiring
    /// `(month, year)` (year as two or four digits), paid by the partner's
    /// customer `customer_reference`.
    pub fn card(
        number: &str,
        expiry: (u8, u16),
        security_code: &str,
        amount: i64,
        currency: &str,
        customer_reference: &str,
    ) -> Self {
        Self {
            number: Personal::new(number.to_string()),
            expiry,
            security_code: Personal::new(security_code.to_string()),
            amount,
            currency: currency.to_string(),
            customer: customer_reference.to_string(),
            return_url: None,
            save_card: false,
            metadata: None,
            session_id: None,
        }
    }

    /// Where the customer's browser returns after 3-D Secure.
    pub fn return_url(mut self, url: &str) -> Self {
        self.return_url = Some(url.to_string());
        self
    }

    /// Asks for a recurrent token of the card (`payment_options.recurrent`).
    pub fn save_card(mut self) -> Self {
        self.save_card = true;
        self
    }

    /// The partner's own data, echoed back in the session and its webhooks.
    pub fn metadata(mut self, text: &str) -> Self {
        self.metadata = Some(text.to_string());
        self
    }

    /// The method that sends it: `init`, or `start` naming a session.
    pub fn method(&self) -> &'static str {
        if self.session_id.is_some() {
            "session/start/payment"
        } else {
            "session/init/payment"
        }
    }

    /// For `session/start/payment`: the session made by `session/create`.
    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_string());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let (month, year) = self.expiry;
        let card = json!({"number": self.number.expose(), "expiration_month": format!("{month:02}"),
            "expiration_year": format!("{:02}", year % 100), "security_code": self.security_code.expose()});
        let mut body = json!({
            "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": card}},
            "amount_details": {"amount": self.amount, "currency": self.currency},
            "customer": {"reference": self.customer},
        });
        let mut options = serde_json::Map::new();
        if let Some(url) = &self.return_url {
            options.insert("return_url".into(), json!(url));
        }
        if self.save_card {
            options.insert("recurrent".into(), json!(true));
        }
        if !options.is_empty() {
            body["payment_options"] = Value::Object(options);
        }
        with_tail(body, self.metadata.as_deref(), self.session_id.as_deref())
    }
}

/// A self-employed person's receipt (`fiscalization_details`): their INN,
/// who pays them, and the services paid for.
#[derive(Debug, Clone)]
pub struct Fiscalization {
    inn: Personal<String>,
    payer: Option<Payer>,
    services: Vec<(String, i64, u32)>,
}

impl Fiscalization {
    /// The receipt of the self-employed person of `inn` (12 digits).
    pub fn new(inn: &str) -> Self {
        Self { inn: Personal::new(inn.to_string()), payer: None, services: Vec::new() }
    }

    /// A service: its name, what it costs in all (kopecks; the services sum
    /// to the payout's amount) and how many.
    pub fn service(mut self, name: &str, amount: i64, quantity: u32) -> Self {
        self.services.push((name.to_string(), amount, quantity));
        self
    }

    /// Who pays: `legal`, `individual` (the default) or `foreign`, with
    /// its tax number and name where the kind needs them.
    pub fn payer(mut self, kind: &str, tax_number: Option<&str>, name: Option<&str>) -> Self {
        let wrap = |t: Option<&str>| t.map(|t| Personal::new(t.to_string()));
        self.payer = Some(Payer { kind: kind.to_string(), tax_number: wrap(tax_number), name: wrap(name) });
        self
    }

    /// The `fiscalization_details` object.
    pub fn details(&self) -> Value {
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|(name, amount, quantity)| {
                json!({"name": name, "amount_details": {"amount": amount, "currency": "rub"}, "quantity": quantity})
            })
            .collect();
        let mut taxpayer = json!({"tax_reference": self.inn.expose(), "services": services});
        if let Some(Payer { kind, tax_number: number, name }) = &self.payer {
            taxpayer["payer_type"] = json!(kind);
            if let Some(n) = number {
                taxpayer["payer_tax_number"] = json!(n.expose());
            }
            if let Some(n) = name {
                taxpayer["payer_name"] = json!(n.expose());
            }
        }
        json!({"professional_income_taxpayer": taxpayer})
    }
}

/// Who pays a self-employed person: its kind, tax number and name.
#[derive(Debug, Clone)]
struct Payer {
    kind: String,
    tax_number: Option<Personal<String>>,
    name: Option<Personal<String>>,
}

/// The body of `token`: a public token that opens one widget.
#[derive(Debug, Clone)]
pub struct PublicToken {
    /// It may hold an INN (the self-employed widget): `Debug` prints `***`.
    body: Personal<Value>,
}

impl PublicToken {
    /// The payment form of the session `session_id` (made by `session/create`).
    pub fn acquiring(session_id: &str) -> Self {
        Self { body: Personal::new(json!({"acquiring_widget": {"session_id": session_id}})) }
    }

    /// Where the payment form sends the customer after paying, and after failing.
    pub fn return_urls(self, success: &str, failure: &str) -> Self {
        let mut body = self.body.into_inner();
        if let Some(widget) = body.get_mut("acquiring_widget") {
            widget["success_return_url"] = json!(success);
            widget["failure_return_url"] = json!(failure);
        }
        Self { body: Personal::new(body) }
    }

    /// The widget that links the self-employed person of `inn` to the bank.
    pub fn self_employed(inn: &str) -> Self {
        Self { body: Personal::new(json!({"self_employed_widget": {"tax_reference": inn}})) }
    }

    /// The card-tokenizing widget.
    pub fn tokenize() -> Self {
        Self { body: Personal::new(json!({"tokenize_widget": {"access": true}})) }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        self.body.expose().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fiscal_payout_and_the_tokens_have_the_banks_shapes() {
        let receipt =
            Fiscalization::new("500100732259").service("Доставка", 1_000, 2).payer("legal", Some("7707083893"), None);
        let body = Payout::card("2200000000004940", 2_000, "rub").fiscalization(receipt).body();
        let t = &body["fiscalization_details"]["professional_income_taxpayer"];
        assert_eq!(
            t["services"][0],
            json!({"name": "Доставка", "amount_details": {"amount": 1_000, "currency": "rub"}, "quantity": 2})
        );
        assert_eq!((t["tax_reference"].as_str(), t["payer_type"].as_str()), (Some("500100732259"), Some("legal")));
        assert!(t.get("payer_name").is_none());
        let token = PublicToken::acquiring("ps_1").return_urls("https://a.example/ok", "https://a.example/no").body();
        assert_eq!(token["acquiring_widget"]["failure_return_url"], "https://a.example/no");
        assert_eq!(
            PublicToken::self_employed("500100732259").body()["self_employed_widget"]["tax_reference"],
            "500100732259"
        );
    }
}
