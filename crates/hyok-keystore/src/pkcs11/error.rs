//! PKCS#11 failures mapped to the key store's public errors. Every message names the
//! PKCS#11 function and its return value (`C_Decrypt: CKR_KEY_HANDLE_INVALID`).

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::error::Error;

/// `C_` + the function name, as the PKCS#11 specification spells it.
pub(crate) fn function_name(f: Function) -> String {
    format!("C_{f:?}")
}

/// The `CKR_…` name of a return value.
pub(crate) fn rv_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(v) => format!("CKR_VENDOR_DEFINED(0x{v:08X})"),
        RvError::UnknownErrorCode(v) => format!("CKR_0x{v:08X}"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR_");
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// `C_Function: CKR_VALUE` (plus a hint for the common cases), or the library's own text.
pub(crate) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => {
            let base = format!("{}: {}", function_name(*f), rv_name(*rv));
            let hint = match rv {
                RvError::PinIncorrect => " (wrong PIN)",
                RvError::PinLocked => " (the PIN is locked: too many wrong attempts)",
                RvError::PinExpired => " (the PIN has expired)",
                RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => {
                    " (the key is gone from the token)"
                }
                RvError::KeyTypeInconsistent => " (the key has the wrong type for this operation)",
                RvError::KeyFunctionNotPermitted => {
                    " (the key's attributes do not permit this use)"
                }
                RvError::TokenNotPresent | RvError::DeviceRemoved => " (the token is not present)",
                _ => "",
            };
            format!("{base}{hint}")
        }
        CkError::LibraryLoading(l) => format!("cannot load the PKCS#11 module: {l}"),
        other => other.to_string(),
    }
}

/// Whether the session is gone (closed, invalid or logged out): re-open, log in, retry.
pub(crate) fn is_session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
            _
        )
    )
}

/// Whether an object handle went stale (look the key up again).
pub(crate) fn is_handle_stale(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _)
    )
}

/// Whether a decrypt failure means "this ciphertext does not open under this key and
/// context" (SoftHSM reports a bad GCM tag as CKR_GENERAL_ERROR).
pub(crate) fn is_bad_ciphertext(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError
                | RvError::DataInvalid
                | RvError::DataLenRange,
            Function::Decrypt | Function::DecryptUpdate | Function::DecryptFinal
        )
    )
}

/// Map to a public error for the key `key` (a URI without secrets).
pub(crate) fn map(key: &str, e: &CkError) -> Error {
    let detail = describe(e);
    let key = key.to_owned();
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinExpired
            | RvError::PinLocked => Error::PinRejected { key, detail },
            RvError::UserPinNotInitialized
            | RvError::UserNotLoggedIn
            | RvError::KeyFunctionNotPermitted => Error::Denied { key, detail },
            RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionCount
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::FunctionFailed
            | RvError::CryptokiNotInitialized => Error::Unavailable { key, detail },
            RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => {
                Error::NotFound { key, detail }
            }
            RvError::MechanismInvalid
            | RvError::MechanismParamInvalid
            | RvError::KeyTypeInconsistent
            | RvError::KeySizeRange
            | RvError::ArgumentsBad
            | RvError::FunctionNotSupported
            | RvError::CurveNotSupported
            | RvError::TemplateInconsistent
            | RvError::TemplateIncomplete
            | RvError::AttributeValueInvalid => Error::Unsupported { key, detail },
            _ => Error::Backend { key, detail },
        },
        CkError::LibraryLoading(_) => Error::ModuleUnavailable { key, detail },
        _ => Error::Backend { key, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specification() {
        assert_eq!(rv_name(RvError::KeyHandleInvalid), "CKR_KEY_HANDLE_INVALID");
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::GeneralError), "CKR_GENERAL_ERROR");
        assert_eq!(
            rv_name(RvError::SessionReadWriteSoExists),
            "CKR_SESSION_READ_WRITE_SO_EXISTS"
        );
        assert_eq!(function_name(Function::Decrypt), "C_Decrypt");
        assert_eq!(function_name(Function::Login), "C_Login");
        let e = CkError::Pkcs11(RvError::KeyHandleInvalid, Function::Decrypt);
        assert!(describe(&e).starts_with("C_Decrypt: CKR_KEY_HANDLE_INVALID"));
        assert!(matches!(map("k", &e), Error::NotFound { .. }));
        let e = CkError::Pkcs11(RvError::PinIncorrect, Function::Login);
        assert!(matches!(map("k", &e), Error::PinRejected { .. }));
        assert!(is_bad_ciphertext(&CkError::Pkcs11(
            RvError::GeneralError,
            Function::Decrypt
        )));
        assert!(!is_bad_ciphertext(&CkError::Pkcs11(
            RvError::GeneralError,
            Function::Encrypt
        )));
    }
}
