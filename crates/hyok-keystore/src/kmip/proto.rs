//! The KMIP 1.4 messages hyok sends (spec sections 4 "Client-to-Server Operations" and 7
//! "Message Contents"), built on the TTLV codec: tags, enumerations, requests and the parts of
//! responses we read.

use super::ttlv::{Ttlv, TtlvError};

/// Tags (spec 9.1.3.1).
#[allow(dead_code)]
pub(crate) mod tag {
    pub(crate) const ATTRIBUTE: u32 = 0x420008;
    pub(crate) const ATTRIBUTE_NAME: u32 = 0x42000A;
    pub(crate) const ATTRIBUTE_VALUE: u32 = 0x42000B;
    pub(crate) const BATCH_COUNT: u32 = 0x42000D;
    pub(crate) const BATCH_ERROR_CONTINUATION_OPTION: u32 = 0x42000E;
    pub(crate) const BATCH_ITEM: u32 = 0x42000F;
    pub(crate) const BLOCK_CIPHER_MODE: u32 = 0x420011;
    pub(crate) const CRYPTOGRAPHIC_ALGORITHM: u32 = 0x420028;
    pub(crate) const CRYPTOGRAPHIC_LENGTH: u32 = 0x42002A;
    pub(crate) const CRYPTOGRAPHIC_PARAMETERS: u32 = 0x42002B;
    pub(crate) const CRYPTOGRAPHIC_USAGE_MASK: u32 = 0x42002C;
    pub(crate) const IV_COUNTER_NONCE: u32 = 0x42003D;
    pub(crate) const MAXIMUM_ITEMS: u32 = 0x42004F;
    pub(crate) const NAME: u32 = 0x420053;
    pub(crate) const NAME_TYPE: u32 = 0x420054;
    pub(crate) const NAME_VALUE: u32 = 0x420055;
    pub(crate) const OBJECT_TYPE: u32 = 0x420057;
    pub(crate) const OPERATION: u32 = 0x42005C;
    pub(crate) const PROTOCOL_VERSION: u32 = 0x420069;
    pub(crate) const PROTOCOL_VERSION_MAJOR: u32 = 0x42006A;
    pub(crate) const PROTOCOL_VERSION_MINOR: u32 = 0x42006B;
    pub(crate) const REQUEST_HEADER: u32 = 0x420077;
    pub(crate) const REQUEST_MESSAGE: u32 = 0x420078;
    pub(crate) const REQUEST_PAYLOAD: u32 = 0x420079;
    pub(crate) const RESPONSE_HEADER: u32 = 0x42007A;
    pub(crate) const RESPONSE_MESSAGE: u32 = 0x42007B;
    pub(crate) const RESPONSE_PAYLOAD: u32 = 0x42007C;
    pub(crate) const RESULT_MESSAGE: u32 = 0x42007D;
    pub(crate) const RESULT_REASON: u32 = 0x42007E;
    pub(crate) const RESULT_STATUS: u32 = 0x42007F;
    pub(crate) const REVOCATION_REASON: u32 = 0x420081;
    pub(crate) const REVOCATION_REASON_CODE: u32 = 0x420082;
    pub(crate) const STATE: u32 = 0x42008D;
    pub(crate) const TEMPLATE_ATTRIBUTE: u32 = 0x420091;
    pub(crate) const UNIQUE_BATCH_ITEM_ID: u32 = 0x420093;
    pub(crate) const UNIQUE_IDENTIFIER: u32 = 0x420094;
    pub(crate) const DATA: u32 = 0x4200C2;
    pub(crate) const TAG_LENGTH: u32 = 0x4200CE;
    pub(crate) const AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA: u32 = 0x4200FE;
    pub(crate) const AUTHENTICATED_ENCRYPTION_TAG: u32 = 0x4200FF;
}

/// Operations (spec 9.1.3.2.27).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Create = 0x01,
    Locate = 0x08,
    GetAttributes = 0x0B,
    Activate = 0x12,
    Revoke = 0x13,
    Destroy = 0x14,
    DiscoverVersions = 0x1E,
    Encrypt = 0x1F,
    Decrypt = 0x20,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Locate => "Locate",
            Self::GetAttributes => "GetAttributes",
            Self::Activate => "Activate",
            Self::Revoke => "Revoke",
            Self::Destroy => "Destroy",
            Self::DiscoverVersions => "DiscoverVersions",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
        }
    }
}

/// Enumeration values used by hyok.
pub(crate) mod value {
    pub(crate) const OBJECT_TYPE_SYMMETRIC_KEY: u32 = 0x02;
    pub(crate) const ALGORITHM_AES: u32 = 0x03;
    pub(crate) const MODE_GCM: u32 = 0x09;
    pub(crate) const NAME_TYPE_TEXT: u32 = 0x01;
    pub(crate) const USAGE_ENCRYPT: i32 = 0x04;
    pub(crate) const USAGE_DECRYPT: i32 = 0x08;
    pub(crate) const REVOCATION_CESSATION_OF_OPERATION: u32 = 0x06;
    pub(crate) const STATUS_SUCCESS: u32 = 0x00;
    pub(crate) const STATUS_OPERATION_UNDONE: u32 = 0x03;
    pub(crate) const BATCH_CONTINUE: u32 = 0x01;
}

/// Result reasons (spec 9.1.3.2.29) that hyok tells apart.
pub(crate) mod reason {
    pub(crate) const ITEM_NOT_FOUND: u32 = 0x01;
    pub(crate) const AUTHENTICATION_NOT_SUCCESSFUL: u32 = 0x03;
    pub(crate) const OPERATION_NOT_SUPPORTED: u32 = 0x05;
    pub(crate) const INVALID_FIELD: u32 = 0x07;
    pub(crate) const FEATURE_NOT_SUPPORTED: u32 = 0x08;
    pub(crate) const CRYPTOGRAPHIC_FAILURE: u32 = 0x0A;
    pub(crate) const PERMISSION_DENIED: u32 = 0x0C;
    pub(crate) const GENERAL_FAILURE: u32 = 0x100;

    pub(crate) fn name(r: u32) -> &'static str {
        match r {
            0x01 => "Item Not Found",
            0x02 => "Response Too Large",
            0x03 => "Authentication Not Successful",
            0x04 => "Invalid Message",
            0x05 => "Operation Not Supported",
            0x06 => "Missing Data",
            0x07 => "Invalid Field",
            0x08 => "Feature Not Supported",
            0x09 => "Operation Canceled By Requester",
            0x0A => "Cryptographic Failure",
            0x0B => "Illegal Operation",
            0x0C => "Permission Denied",
            0x0D => "Object Archived",
            0x0E => "Index Out Of Bounds",
            0x10 => "Key Format Type Not Supported",
            0x18 => "Object Already Exists",
            0x100 => "General Failure",
            _ => "other",
        }
    }
}

/// Key states (spec 9.1.3.2.17).
pub(crate) fn state_name(s: u32) -> &'static str {
    match s {
        1 => "Pre-Active",
        2 => "Active",
        3 => "Deactivated",
        4 => "Compromised",
        5 => "Destroyed",
        6 => "Destroyed Compromised",
        _ => "unknown",
    }
}

/// A KMIP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    pub(crate) major: i32,
    pub(crate) minor: i32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version whose encoding hyok speaks (GCM tag length and AAD fields exist from 1.4).
pub(crate) const V1_4: Version = Version { major: 1, minor: 4 };
/// The version DiscoverVersions is sent with (the oldest that has the operation).
pub(crate) const V1_1: Version = Version { major: 1, minor: 1 };

impl Version {
    pub(crate) fn ttlv(self) -> Ttlv {
        Ttlv::structure(
            tag::PROTOCOL_VERSION,
            vec![
                Ttlv::int(tag::PROTOCOL_VERSION_MAJOR, self.major),
                Ttlv::int(tag::PROTOCOL_VERSION_MINOR, self.minor),
            ],
        )
    }

    pub(crate) fn parse(item: &Ttlv) -> Result<Self, TtlvError> {
        Ok(Self {
            major: item
                .need(tag::PROTOCOL_VERSION_MAJOR, "Protocol Version Major")?
                .as_int("Protocol Version Major")?,
            minor: item
                .need(tag::PROTOCOL_VERSION_MINOR, "Protocol Version Minor")?
                .as_int("Protocol Version Minor")?,
        })
    }
}

/// A request message with one batch item per (operation, payload). Batch items are numbered
/// by their index (Unique Batch Item ID) when there are several.
pub(crate) fn request(version: Version, items: Vec<(Operation, Vec<Ttlv>)>) -> Ttlv {
    let n = items.len();
    let mut header = vec![version.ttlv()];
    if n > 1 {
        // One failed item (a wrong context) must not stop the others.
        header.push(Ttlv::enumeration(
            tag::BATCH_ERROR_CONTINUATION_OPTION,
            value::BATCH_CONTINUE,
        ));
    }
    header.push(Ttlv::int(tag::BATCH_COUNT, n as i32));
    let mut children = vec![Ttlv::structure(tag::REQUEST_HEADER, header)];
    for (i, (op, payload)) in items.into_iter().enumerate() {
        let mut item = vec![Ttlv::enumeration(tag::OPERATION, op as u32)];
        if n > 1 {
            item.push(Ttlv::bytes(
                tag::UNIQUE_BATCH_ITEM_ID,
                &(i as u32).to_be_bytes(),
            ));
        }
        item.push(Ttlv::structure(tag::REQUEST_PAYLOAD, payload));
        children.push(Ttlv::structure(tag::BATCH_ITEM, item));
    }
    Ttlv::structure(tag::REQUEST_MESSAGE, children)
}

/// One batch item of a response.
#[derive(Debug)]
pub(crate) struct BatchResult {
    pub(crate) status: u32,
    pub(crate) reason: Option<u32>,
    pub(crate) message: Option<String>,
    pub(crate) payload: Option<Ttlv>,
}

impl BatchResult {
    pub(crate) fn ok(&self) -> bool {
        self.status == value::STATUS_SUCCESS
    }

    /// "Item Not Found: no such object" for error messages.
    pub(crate) fn describe(&self) -> String {
        let reason = self
            .reason
            .map(|r| format!("{} (0x{r:x})", reason::name(r)))
            .unwrap_or_else(|| format!("status {}", self.status));
        match &self.message {
            Some(m) if !m.is_empty() => {
                format!("{reason}: {}", crate::net::one_line(m, 200))
            }
            _ => reason,
        }
    }
}

/// The batch items of a response message, in the order of the request (matched by Unique
/// Batch Item ID when the server sent them).
pub(crate) fn parse_response(msg: Ttlv, expected: usize) -> Result<Vec<BatchResult>, TtlvError> {
    if msg.tag != tag::RESPONSE_MESSAGE {
        return Err(TtlvError::Missing("Response Message"));
    }
    msg.need(tag::RESPONSE_HEADER, "Response Header")?;
    let super::ttlv::Value::Structure(items) = msg.value else {
        return Err(TtlvError::WrongType("Response Message"));
    };
    let mut out: Vec<Option<BatchResult>> = (0..expected).map(|_| None).collect();
    for (next, item) in items
        .into_iter()
        .filter(|i| i.tag == tag::BATCH_ITEM)
        .enumerate()
    {
        let index = match item.child(tag::UNIQUE_BATCH_ITEM_ID) {
            Some(id) if expected > 1 => {
                let b = id.as_bytes("Unique Batch Item ID")?;
                let mut a = [0u8; 4];
                if b.len() != 4 {
                    return Err(TtlvError::WrongType("Unique Batch Item ID"));
                }
                a.copy_from_slice(b);
                u32::from_be_bytes(a) as usize
            }
            _ => next,
        };
        let status = item
            .need(tag::RESULT_STATUS, "Result Status")?
            .as_enum("Result Status")?;
        let reason = item
            .child(tag::RESULT_REASON)
            .map(|r| r.as_enum("Result Reason"))
            .transpose()?;
        let message = item
            .child(tag::RESULT_MESSAGE)
            .map(|r| r.as_text("Result Message").map(str::to_owned))
            .transpose()?;
        let payload = match item.value {
            super::ttlv::Value::Structure(children) => children
                .into_iter()
                .find(|c| c.tag == tag::RESPONSE_PAYLOAD),
            _ => None,
        };
        let slot = out
            .get_mut(index)
            .ok_or(TtlvError::Missing("a batch item with a known id"))?;
        *slot = Some(BatchResult {
            status,
            reason,
            message,
            payload,
        });
    }
    let answered = out.iter().filter(|r| r.is_some()).count();
    if answered == 0 {
        return Err(TtlvError::Missing("a batch item per request"));
    }
    // A server that failed the whole message answers with one item; one that stopped after a
    // failed item leaves the rest out.
    let whole = match (expected > 1, answered, &out[0]) {
        (true, 1, Some(first)) if !first.ok() => {
            Some((first.status, first.reason, first.message.clone()))
        }
        _ => None,
    };
    Ok(out
        .into_iter()
        .map(|r| match (r, &whole) {
            (Some(r), None) => r,
            (_, Some((status, reason, message))) => BatchResult {
                status: *status,
                reason: *reason,
                message: message.clone(),
                payload: None,
            },
            (None, None) => BatchResult {
                status: value::STATUS_OPERATION_UNDONE,
                reason: None,
                message: Some(
                    "the server did not process this batch item (an earlier item failed)".into(),
                ),
                payload: None,
            },
        })
        .collect())
}

/// Cryptographic Parameters for AES-GCM with a 16-byte tag (KMIP 1.4: Tag Length).
pub(crate) fn gcm_parameters() -> Ttlv {
    Ttlv::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            Ttlv::enumeration(tag::BLOCK_CIPHER_MODE, value::MODE_GCM),
            Ttlv::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, value::ALGORITHM_AES),
            Ttlv::int(tag::TAG_LENGTH, 16),
        ],
    )
}

/// An Attribute (name, value) for 1.x Template-Attribute, Locate and GetAttributes.
pub(crate) fn attribute(name: &str, value: Ttlv) -> Ttlv {
    Ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            Ttlv::text(tag::ATTRIBUTE_NAME, name),
            Ttlv {
                tag: tag::ATTRIBUTE_VALUE,
                value: value.value,
            },
        ],
    )
}

/// The Name attribute value.
pub(crate) fn name_value(name: &str) -> Ttlv {
    Ttlv::structure(
        tag::ATTRIBUTE_VALUE,
        vec![
            Ttlv::text(tag::NAME_VALUE, name),
            Ttlv::enumeration(tag::NAME_TYPE, value::NAME_TYPE_TEXT),
        ],
    )
}

/// Attributes of a GetAttributes response payload, by attribute name.
pub(crate) fn attributes_of(payload: &Ttlv) -> impl Iterator<Item = (&str, &Ttlv)> {
    payload.children(tag::ATTRIBUTE).filter_map(|a| {
        let name = a
            .child(tag::ATTRIBUTE_NAME)?
            .as_text("Attribute Name")
            .ok()?;
        let value = a.child(tag::ATTRIBUTE_VALUE)?;
        Some((name, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape() {
        let r = request(
            V1_4,
            vec![
                (
                    Operation::Encrypt,
                    vec![Ttlv::text(tag::UNIQUE_IDENTIFIER, "1")],
                ),
                (
                    Operation::Encrypt,
                    vec![Ttlv::text(tag::UNIQUE_IDENTIFIER, "2")],
                ),
            ],
        );
        let bytes = r.encode();
        let back = Ttlv::decode(&bytes).unwrap();
        let header = back.child(tag::REQUEST_HEADER).unwrap();
        assert_eq!(
            header.child(tag::BATCH_COUNT).unwrap().as_int("n").unwrap(),
            2
        );
        assert_eq!(back.children(tag::BATCH_ITEM).count(), 2);
    }

    fn response(items: Vec<Ttlv>) -> Ttlv {
        let mut children = vec![Ttlv::structure(
            tag::RESPONSE_HEADER,
            vec![V1_4.ttlv(), Ttlv::int(tag::BATCH_COUNT, items.len() as i32)],
        )];
        children.extend(items);
        Ttlv::structure(tag::RESPONSE_MESSAGE, children)
    }

    fn item(id: Option<u32>, status: u32, payload: Option<Ttlv>) -> Ttlv {
        let mut v = vec![Ttlv::enumeration(tag::OPERATION, Operation::Encrypt as u32)];
        if let Some(id) = id {
            v.push(Ttlv::bytes(tag::UNIQUE_BATCH_ITEM_ID, &id.to_be_bytes()));
        }
        v.push(Ttlv::enumeration(tag::RESULT_STATUS, status));
        if status != 0 {
            v.push(Ttlv::enumeration(
                tag::RESULT_REASON,
                reason::ITEM_NOT_FOUND,
            ));
            v.push(Ttlv::text(tag::RESULT_MESSAGE, "no\nsuch"));
        }
        v.extend(payload);
        Ttlv::structure(tag::BATCH_ITEM, v)
    }

    #[test]
    fn responses_are_matched_by_batch_id() {
        let p = |s: &str| {
            Ttlv::structure(
                tag::RESPONSE_PAYLOAD,
                vec![Ttlv::text(tag::UNIQUE_IDENTIFIER, s)],
            )
        };
        let msg = response(vec![item(Some(1), 0, Some(p("b"))), item(Some(0), 1, None)]);
        let r = parse_response(msg, 2).unwrap();
        assert!(!r[0].ok());
        assert_eq!(r[0].describe(), "Item Not Found (0x1): no such");
        assert!(r[1].ok());
        assert!(r[1].payload.is_some());
        // Unknown id, wrong message; a missing item is reported as not processed; a single
        // failure for a batch applies to every item.
        let r = parse_response(response(vec![item(Some(0), 0, None)]), 2).unwrap();
        assert!(r[0].ok() && !r[1].ok());
        assert!(
            r[1].describe().contains("did not process"),
            "{}",
            r[1].describe()
        );
        let r = parse_response(response(vec![item(None, 1, None)]), 3).unwrap();
        assert!(r
            .iter()
            .all(|b| !b.ok() && b.reason == Some(reason::ITEM_NOT_FOUND)));
        assert!(parse_response(
            response(vec![item(Some(5), 0, None), item(Some(0), 0, None)]),
            2
        )
        .is_err());
        assert!(parse_response(Ttlv::structure(tag::REQUEST_MESSAGE, vec![]), 1).is_err());
        assert!(parse_response(Ttlv::structure(tag::RESPONSE_MESSAGE, vec![]), 1).is_err());
    }
}
