//! ISO-4217 currency codes (active codes, 2024), for validating money fields.

const CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL \
BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN \
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES \
KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN \
MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG \
SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI \
UYU UYW UZS VED VES VND VUV WST XAF XCD XOF XPF XSU YER ZAR ZMW ZWG ZWL";

/// The largest amount of money codelink takes, in minor units (10^12: ten
/// billion in a two-decimal currency). Amounts and plan values above it are
/// refused, so that sums stay far from any integer limit.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// Whether `code` is an ISO-4217 currency code (uppercase, as the standard writes it).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && CODES.split_ascii_whitespace().any(|c| c == code)
}

/// Digits after the decimal point of a currency's minor unit (ISO 4217): 2
/// for most, 0 for JPY or KRW, 3 for KWD or BHD, 4 for CLF and UYW.
pub fn minor_digits(code: &str) -> u32 {
    match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn minor_units() {
        assert_eq!(super::minor_digits("EUR"), 2);
        assert_eq!(super::minor_digits("JPY"), 0);
        assert_eq!(super::minor_digits("KWD"), 3);
        assert_eq!(super::minor_digits("CLF"), 4);
    }

    #[test]
    fn known_and_unknown() {
        for c in ["EUR", "USD", "JPY", "GBP", "CHF"] {
            assert!(super::is_currency(c), "{c}");
        }
        for c in ["eur", "EURO", "XXX", "ABC", ""] {
            assert!(!super::is_currency(c), "{c}");
        }
    }
}
