//! A self-employed person's linking to the bank, as the linking widget
//! (`self_employed_widget`) drives it: the person sends the request, then
//! confirms or declines it in the tax service's app («Мой налог»); a linked
//! person may be unlinked. One pure transition, tested as the whole state ×
//! event table. A link belongs to one project and one INN `[INF]`: no
//! project learns of another's. The partner learns the outcome only by
//! asking (`npd/check`, the self-employed issue); no webhook is sent.

/// Where a person's link to the bank stands, for one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Never asked, or unlinked since.
    NotRequested,
    /// Sent to the tax service's app; the person has not answered.
    Requested,
    Linked,
    /// The person declined in the app; the request may be sent again.
    Declined,
}

/// What happens to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkEvent {
    /// The person sends the request (the widget's button).
    Request,
    /// The person confirms in the tax service's app.
    Confirm,
    /// The person declines in the tax service's app.
    Decline,
    /// The person (or the operator) ends the link.
    Unlink,
}

impl LinkState {
    pub const ALL: [LinkState; 4] = [Self::NotRequested, Self::Requested, Self::Linked, Self::Declined];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRequested => "not_requested",
            Self::Requested => "requested",
            Self::Linked => "linked",
            Self::Declined => "declined",
        }
    }

    pub fn parse_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl LinkEvent {
    pub const ALL: [LinkEvent; 4] = [Self::Request, Self::Confirm, Self::Decline, Self::Unlink];
}

/// An event the link's state does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a link that is {} does not take {event:?}", state.as_str())]
pub struct WrongLinkState {
    pub state: LinkState,
    pub event: LinkEvent,
}

/// The link after `event`. Sending the request again while it waits changes
/// nothing (a second press of the button); a linked person's request is
/// refused (already linked: the docs' `taxpayer_already_bound`).
pub fn transition(state: LinkState, event: LinkEvent) -> Result<LinkState, WrongLinkState> {
    use LinkEvent as E;
    use LinkState as S;
    match (state, event) {
        (S::NotRequested | S::Declined | S::Requested, E::Request) => Ok(S::Requested),
        (S::Requested, E::Confirm) => Ok(S::Linked),
        (S::Requested, E::Decline) => Ok(S::Declined),
        (S::Linked, E::Unlink) => Ok(S::NotRequested),
        (S::Linked, E::Request | E::Confirm | E::Decline)
        | (S::NotRequested | S::Declined, E::Confirm | E::Decline | E::Unlink)
        | (S::Requested, E::Unlink) => Err(WrongLinkState { state, event }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinkEvent as E;
    use LinkState as S;

    /// The whole table: every state × event, written out.
    #[test]
    fn every_state_takes_exactly_its_events() {
        let table = [
            (S::NotRequested, E::Request, Some(S::Requested)),
            (S::NotRequested, E::Confirm, None),
            (S::NotRequested, E::Decline, None),
            (S::NotRequested, E::Unlink, None),
            (S::Requested, E::Request, Some(S::Requested)),
            (S::Requested, E::Confirm, Some(S::Linked)),
            (S::Requested, E::Decline, Some(S::Declined)),
            (S::Requested, E::Unlink, None),
            (S::Linked, E::Request, None),
            (S::Linked, E::Confirm, None),
            (S::Linked, E::Decline, None),
            (S::Linked, E::Unlink, Some(S::NotRequested)),
            (S::Declined, E::Request, Some(S::Requested)),
            (S::Declined, E::Confirm, None),
            (S::Declined, E::Decline, None),
            (S::Declined, E::Unlink, None),
        ];
        assert_eq!(table.len(), S::ALL.len() * E::ALL.len());
        for (state, event, next) in table {
            assert_eq!(transition(state, event).ok(), next, "{state:?} × {event:?}");
        }
    }

    /// From nothing, every state is reached, and unlinking starts over.
    #[test]
    fn a_walk_reaches_every_state() {
        let mut state = S::NotRequested;
        let mut seen = vec![state];
        for event in [E::Request, E::Decline, E::Request, E::Confirm, E::Unlink] {
            state = transition(state, event).unwrap();
            seen.push(state);
        }
        for s in S::ALL {
            assert!(seen.contains(&s), "{s:?} never reached");
            assert_eq!(S::parse_stored(s.as_str()), Some(s));
        }
        assert_eq!(state, S::NotRequested);
    }
}
