//! RSASSA-PKCS1-v1_5 with SHA-256, base64 (standard alphabet, padded): the
//! signature of the whole Bank 131 API, both directions.
//!
//! Keys are read from PEM in the forms partners actually have (PKCS#8
//! `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`; SPKI `PUBLIC KEY` or PKCS#1
//! `RSA PUBLIC KEY`). Public keys are normalised to SPKI DER, which is what the
//! store keeps.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicEncryptingKey};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;

/// Smallest RSA modulus accepted, in bits. The bank's own fixture keys are 2048-bit.
pub const RSA_MODULUS_MIN_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM document: {0}")]
    Pem(String),
    #[error("unsupported PEM label {0:?} (expected PRIVATE KEY, RSA PRIVATE KEY, PUBLIC KEY or RSA PUBLIC KEY)")]
    Label(String),
    #[error("not a usable RSA key: {0}")]
    Rsa(String),
    #[error("RSA key of {0} bits is too small (minimum {RSA_MODULUS_MIN_BITS})")]
    TooSmall(usize),
    #[error("the system's random source failed")]
    Random,
}

/// A partner's (or the bank's) private key. `Debug` never shows key material.
pub struct SigningKey {
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// A fresh RSA-2048 key pair.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(Self { pair })
    }

    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let doc = pem::parse(text).map_err(|e| KeyError::Pem(e.to_string()))?;
        let pair = match doc.tag() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(doc.contents()),
            "RSA PRIVATE KEY" => KeyPair::from_der(doc.contents()),
            other => return Err(KeyError::Label(other.to_string())),
        }
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(Self { pair })
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let der = self.pair.as_der().map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())))
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        let der = self.pair.public_key().as_der().map_err(|e| KeyError::Rsa(e.to_string()))?;
        VerifyingKey::from_spki_der(der.as_ref())
    }

    /// Raw signature bytes over `message`.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(sig)
    }

    /// Base64 signature over `message`, as sent in `X-PARTNER-SIGN` or `signature`.
    pub fn sign_base64(&self, message: &[u8]) -> Result<String, KeyError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.sign_raw(message)?))
    }
}

/// A public key as SPKI DER, parsed once. Cheap to clone.
///
/// Why parsed once: parsing the DER and setting up the modulus's Montgomery
/// context on every request cost about a third of each verification in the
/// profile of signed writes; a parsed key keeps both.
#[derive(Clone)]
pub struct VerifyingKey {
    spki_der: std::sync::Arc<[u8]>,
    parsed: std::sync::Arc<signature::ParsedPublicKey>,
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl Eq for VerifyingKey {}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", self.fingerprint())
    }
}

impl VerifyingKey {
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = PublicEncryptingKey::from_der(der).map_err(|e| KeyError::Rsa(e.to_string()))?;
        let bits = key.key_size_bits();
        if bits < RSA_MODULUS_MIN_BITS {
            return Err(KeyError::TooSmall(bits));
        }
        let parsed = signature::ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
            .map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(Self { spki_der: der.into(), parsed: std::sync::Arc::new(parsed) })
    }

    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let doc = pem::parse(text).map_err(|e| KeyError::Pem(e.to_string()))?;
        match doc.tag() {
            "PUBLIC KEY" => Self::from_spki_der(doc.contents()),
            "RSA PUBLIC KEY" => Self::from_spki_der(&pkcs1_to_spki(doc.contents())),
            // A private key file also names its public key: accept it, keep only the public half.
            "PRIVATE KEY" | "RSA PRIVATE KEY" => SigningKey::from_pem(text)?.verifying_key(),
            other => Err(KeyError::Label(other.to_string())),
        }
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der.to_vec()))
    }

    /// `sha256:` + hex of the SPKI DER: a stable name for a key in lists and logs.
    pub fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.spki_der);
        format!("sha256:{}", hex(digest.as_ref()))
    }

    /// True when `signature_b64` is a valid signature of `message` by this key.
    /// Undecodable base64 is simply an invalid signature.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> bool {
        match base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) {
            Ok(sig) => self.verify_raw(message, &sig),
            Err(_) => false,
        }
    }

    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }
}

/// Wraps a PKCS#1 `RSAPublicKey` in a SubjectPublicKeyInfo (rsaEncryption, NULL params).
fn pkcs1_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALG_ID: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALG_ID.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Lower-case hex of `bytes`: the one encoding of fingerprints, tokens and
/// hashes the project writes.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// [`hex`] appended to `out`, two digits a byte from a table (`write!` with
/// a width took a formatter's way through every byte, and the server makes
/// a request id this way for every request).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// Fills `out` from the system's random source (idempotency keys, ids).
pub fn random_bytes(out: &mut [u8]) -> Result<(), KeyError> {
    aws_lc_rs::rand::fill(out).map_err(|_| KeyError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte_as_format_writes_them() {
        let bytes: Vec<u8> = (0..=255).collect();
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), formatted);
        let mut out = String::from("req_");
        push_hex(&mut out, &0x0123_4567_89ab_cdef_u64.to_be_bytes());
        assert_eq!(out, format!("req_{:016x}", 0x0123_4567_89ab_cdef_u64));
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn sign_and_verify_round_trip_and_pem_forms() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key().unwrap();
        let sig = key.sign_base64(b"[]").unwrap();
        assert!(public.verify_base64(b"[]", &sig));
        assert!(!public.verify_base64(b"{}", &sig));
        assert!(!public.verify_base64(b"[]", "not base64!"));

        let reloaded = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(reloaded.verifying_key().unwrap(), public);
        assert_eq!(VerifyingKey::from_pem(&public.to_pem()).unwrap(), public);
        assert!(format!("{key:?}").contains("***"));
    }

    #[test]
    fn pkcs1_public_key_is_wrapped_into_the_same_spki() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key().unwrap();
        // SPKI = SEQ { AlgId(15 bytes), BIT STRING { 0x00, pkcs1 } }; peel it back.
        let spki = public.spki_der();
        let bit_string_at = spki.iter().skip(4 + 15).position(|_| true).unwrap() + 4 + 15;
        assert_eq!(spki[bit_string_at], 0x03);
        let (len_len, _) = if spki[bit_string_at + 1] & 0x80 != 0 {
            ((spki[bit_string_at + 1] & 0x7f) as usize + 1, ())
        } else {
            (1, ())
        };
        let pkcs1 = &spki[bit_string_at + 1 + len_len + 1..];
        let pem_text = pem::encode(&pem::Pem::new("RSA PUBLIC KEY", pkcs1.to_vec()));
        assert_eq!(VerifyingKey::from_pem(&pem_text).unwrap(), public);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(VerifyingKey::from_pem("hello"), Err(KeyError::Pem(_))));
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        assert!(matches!(VerifyingKey::from_pem(&cert), Err(KeyError::Label(_))));
    }
}
