-- Public tokens (issue 10): what a partner's server issues so that a
-- customer's browser may open one of the bank's widgets. Single-use (used_at
-- set once), lasting until expires_at, bound to the project and the widgets
-- in grant (JSON; the INN of a linking widget in clear: the store holds
-- personal data, answers mask it).
CREATE TABLE public_tokens (
    token          TEXT    PRIMARY KEY,
    project_id     TEXT    NOT NULL REFERENCES projects(id),
    grant_widgets  TEXT    NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    used_at_us     INTEGER
) STRICT;
CREATE INDEX public_tokens_project ON public_tokens (project_id, created_at_us);

-- The card vault: each card a project tokenized, its number sealed
-- (AES-256-GCM under the key key_id names, which lives outside the database)
-- and named by number_hash; only the masked form is in clear.
CREATE TABLE vault_cards (
    project_id     TEXT    NOT NULL REFERENCES projects(id),
    number_hash    TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    nonce          BLOB    NOT NULL,
    ciphertext     BLOB    NOT NULL,
    brand          TEXT    NOT NULL,
    bin            TEXT    NOT NULL,
    last4          TEXT    NOT NULL,
    card_expiry    TEXT,
    created_at_us  INTEGER NOT NULL,
    PRIMARY KEY (project_id, number_hash)
) STRICT;

-- Bank accounts in the vault (tokenize): the account number sealed like a
-- card's, the BIK (public reference data) and the masked account in clear.
CREATE TABLE vault_accounts (
    project_id      TEXT    NOT NULL REFERENCES projects(id),
    token           TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    nonce           BLOB    NOT NULL,
    ciphertext      BLOB    NOT NULL,
    bik             TEXT    NOT NULL,
    masked_account  TEXT    NOT NULL,
    created_at_us   INTEGER NOT NULL,
    PRIMARY KEY (project_id, token)
) STRICT;

-- Key rotation looks for the items sealed under other keys than the current one.
CREATE INDEX vault_cards_key ON vault_cards (key_id);
CREATE INDEX vault_accounts_key ON vault_accounts (key_id);

-- The origins whose pages may show a project's widgets (a NameSet: `*` any, the default, or a list).
ALTER TABLE projects ADD COLUMN widget_origins TEXT NOT NULL DEFAULT '*';
