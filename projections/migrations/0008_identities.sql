-- The identity behind each API key (the root of its issuing chain), so the
-- approval rules compare who holds a credential, not the credential's name.
-- NULL for keys issued before identities were recorded: they stand for
-- themselves.
ALTER TABLE tokens ADD COLUMN identity text;
