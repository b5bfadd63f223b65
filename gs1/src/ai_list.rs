//! The contents of the AI table (see [`crate::ai_table`] for what each field means).
//!
//! Sources: GS1 General Specifications and the GS1 Syntax Dictionary. Titles are the GS1 data
//! titles, except that AI 17 is shortened to "EXPIRY" (GS1: "USE BY or EXPIRY").

use crate::ai_table::{AiEntry, Lint, Part, Requirements};

const fn ai(code: &'static str, title: &'static str, parts: &'static [Part]) -> AiEntry {
    AiEntry::range(code, code, title, parts)
}

/// A measure family 31nn–36nn: predefined N6 with implied decimals.
const fn m(
    first: &'static str,
    last: &'static str,
    title: &'static str,
    req: Requirements,
) -> AiEntry {
    AiEntry::range(first, last, title, N6)
        .pre()
        .decimal()
        .req(req)
}

use Part as P;
const CSUM: Lint = Lint::CheckDigit;
const N6: &[Part] = &[P::n(6)];
const N13_CSUM: &[Part] = &[P::n(13).lint(CSUM)];
const N14_CSUM: &[Part] = &[P::n(14).lint(CSUM)];
const N18_CSUM: &[Part] = &[P::n(18).lint(CSUM)];
const DATE_D0: &[Part] = &[P::n(6).lint(Lint::YyMmD0)];
const X20: &[Part] = &[P::x_var(20)];
const X30: &[Part] = &[P::x_var(30)];
const TRADE: Requirements = &[&["01", "02", "8006", "8026"]];
const R01: Requirements = &[&["01"]];
const R01_02: Requirements = &[&["01", "02"]];
const R00_01: Requirements = &[&["00", "01"]];
const VAR_MEASURE: &[&str] = &["30", "31nn", "32nn", "35nn", "36nn"];
const R01_AND_VAR_MEASURE: Requirements = &[&["01"], VAR_MEASURE];

/// The AI table, sorted by AI.
#[rustfmt::skip]
pub static AI_TABLE: &[AiEntry] = &[
    ai("00", "SSCC", N18_CSUM).pre().dl(&[]),
    ai("01", "GTIN", N14_CSUM).pre().ex(&["02", "255", "37"]).dl(&[&["22", "10", "21"], &["235"]]),
    ai("02", "CONTENT", N14_CSUM).pre().req(&[&["37"]]),
    ai("10", "BATCH/LOT", X20).req(TRADE),
    ai("11", "PROD DATE", DATE_D0).pre().req(TRADE),
    ai("12", "DUE DATE", DATE_D0).pre().req(&[&["8020"]]),
    ai("13", "PACK DATE", DATE_D0).pre().req(TRADE),
    ai("15", "BEST BEFORE or BEST BY", DATE_D0).pre().req(TRADE),
    ai("16", "SELL BY", DATE_D0).pre().req(TRADE),
    ai("17", "EXPIRY", DATE_D0).pre().req(&[&["01", "02", "255", "8006", "8026"]]),
    ai("20", "VARIANT", &[P::n(2)]).pre().req(TRADE),
    ai("21", "SERIAL", X20).req(&[&["01", "8006"]]).ex(&["235"]),
    ai("22", "CPV", X20).req(R01),
    ai("235", "TPX", &[P::x_var(28)]).req(R01),
    ai("240", "ADDITIONAL ID", X30).req(TRADE),
    ai("241", "CUST. PART No.", X30).req(TRADE),
    ai("242", "MTO VARIANT", &[P::n_var(6)]).req(TRADE),
    ai("250", "SECONDARY SERIAL", X30).req(&[&["01", "8006"], &["21"]]),
    ai("251", "REF. TO SOURCE", X30).req(&[&["01", "8006"]]),
    ai("253", "GDTI", &[P::n(13).lint(CSUM), P::x_var(17).opt()]).dl(&[]),
    ai("254", "GLN EXTENSION COMPONENT", X20).req(&[&["414"]]),
    ai("255", "GCN", &[P::n(13).lint(CSUM), P::n_var(12).opt()]).dl(&[])
        .ex(&["01", "02", "415", "8006", "8020", "8026"]),
    ai("30", "VAR. COUNT", &[P::n_var(8)]).req(R01_02),
    m("3100", "3105", "NET WEIGHT (kg)", R01_02),
    m("3110", "3115", "LENGTH (m)", R01_02),
    m("3120", "3125", "WIDTH (m)", R01_02),
    m("3130", "3135", "HEIGHT (m)", R01_02),
    m("3140", "3145", "AREA (m²)", R01_02),
    m("3150", "3155", "NET VOLUME (l)", R01_02),
    m("3160", "3165", "NET VOLUME (m³)", R01_02),
    m("3200", "3205", "NET WEIGHT (lb)", R01_02),
    m("3210", "3215", "LENGTH (in)", R01_02),
    m("3220", "3225", "LENGTH (ft)", R01_02),
    m("3230", "3235", "LENGTH (yd)", R01_02),
    m("3240", "3245", "WIDTH (in)", R01_02),
    m("3250", "3255", "WIDTH (ft)", R01_02),
    m("3260", "3265", "WIDTH (yd)", R01_02),
    m("3270", "3275", "HEIGHT (in)", R01_02),
    m("3280", "3285", "HEIGHT (ft)", R01_02),
    m("3290", "3295", "HEIGHT (yd)", R01_02),
    m("3300", "3305", "GROSS WEIGHT (kg)", R00_01),
    m("3310", "3315", "LENGTH (m), log", R00_01),
    m("3320", "3325", "WIDTH (m), log", R00_01),
    m("3330", "3335", "HEIGHT (m), log", R00_01),
    m("3340", "3345", "AREA (m²), log", R00_01),
    m("3350", "3355", "VOLUME (l), log", R00_01),
    m("3360", "3365", "VOLUME (m³), log", R00_01),
    m("3370", "3375", "KG PER m²", R01),
    m("3400", "3405", "GROSS WEIGHT (lb)", R00_01),
    m("3410", "3415", "LENGTH (in), log", R00_01),
    m("3420", "3425", "LENGTH (ft), log", R00_01),
    m("3430", "3435", "LENGTH (yd), log", R00_01),
    m("3440", "3445", "WIDTH (in), log", R00_01),
    m("3450", "3455", "WIDTH (ft), log", R00_01),
    m("3460", "3465", "WIDTH (yd), log", R00_01),
    m("3470", "3475", "HEIGHT (in), log", R00_01),
    m("3480", "3485", "HEIGHT (ft), log", R00_01),
    m("3490", "3495", "HEIGHT (yd), log", R00_01),
    m("3500", "3505", "AREA (in²)", R01_02),
    m("3510", "3515", "AREA (ft²)", R01_02),
    m("3520", "3525", "AREA (yd²)", R01_02),
    m("3530", "3535", "AREA (in²), log", R00_01),
    m("3540", "3545", "AREA (ft²), log", R00_01),
    m("3550", "3555", "AREA (yd²), log", R00_01),
    m("3560", "3565", "NET WEIGHT (t oz)", R01_02),
    m("3570", "3575", "NET VOLUME (oz)", R01_02),
    m("3600", "3605", "NET VOLUME (qt)", R01_02),
    m("3610", "3615", "NET VOLUME (gal.)", R01_02),
    m("3620", "3625", "VOLUME (qt), log", R00_01),
    m("3630", "3635", "VOLUME (gal.), log", R00_01),
    m("3640", "3645", "VOLUME (in³)", R01_02),
    m("3650", "3655", "VOLUME (ft³)", R01_02),
    m("3660", "3665", "VOLUME (yd³)", R01_02),
    m("3670", "3675", "VOLUME (in³), log", R00_01),
    m("3680", "3685", "VOLUME (ft³), log", R00_01),
    m("3690", "3695", "VOLUME (yd³), log", R00_01),
    // The Syntax Dictionary also asks for 00 beside 37; a GS1-128 label often carries 02+37 in
    // one symbol and the SSCC in another, so only the content key is required here.
    ai("37", "COUNT", &[P::n_var(8)]).req(&[&["02", "8026"]]),
    AiEntry::range("3900", "3909", "AMOUNT", &[P::n_var(15)]).decimal()
        .req(&[&["255", "8020"]]).ex(&["391n", "394n", "8111"]),
    AiEntry::range("3910", "3919", "AMOUNT", &[P::n(3), P::n_var(15)]).decimal().req(&[&["8020"]]),
    AiEntry::range("3920", "3929", "PRICE", &[P::n_var(15)]).decimal()
        .req(R01_AND_VAR_MEASURE).ex(&["393n"]),
    AiEntry::range("3930", "3939", "PRICE", &[P::n(3), P::n_var(15)]).decimal().req(&[VAR_MEASURE]),
    ai("400", "ORDER NUMBER", X30),
    ai("401", "GINC", X30).dl(&[]),
    ai("402", "GSIN", &[P::n(17).lint(CSUM)]).dl(&[]),
    ai("403", "ROUTE", X30).req(&[&["00"]]),
    ai("410", "SHIP TO LOC", N13_CSUM).pre(),
    ai("411", "BILL TO", N13_CSUM).pre(),
    ai("412", "PURCHASE FROM", N13_CSUM).pre(),
    ai("413", "SHIP FOR LOC", N13_CSUM).pre(),
    ai("414", "LOC No.", N13_CSUM).pre().dl(&[&["254"], &["7040"]]),
    ai("415", "PAY TO", N13_CSUM).pre().req(&[&["8020"]]).dl(&[&["8020"]]),
    ai("416", "PROD/SERV LOC", N13_CSUM).pre(),
    ai("417", "PARTY", N13_CSUM).pre().dl(&[&["7040"]]),
    ai("420", "SHIP TO POST", X20).ex(&["421"]),
    ai("421", "SHIP TO POST", &[P::n(3), P::x_var(9)]),
    ai("422", "ORIGIN", &[P::n(3)]).req(TRADE).ex(&["426"]),
    ai("7003", "EXPIRY TIME", &[P::n(6).lint(Lint::YyMmDd), P::n(4).lint(Lint::HhMm)]).req(R01_02),
    ai("7006", "FIRST FREEZE DATE", &[P::n(6).lint(Lint::YyMmDd)]).req(R01_02),
    ai("8003", "GRAI", &[P::n(1).lint(Lint::Zero), P::n(13).lint(CSUM), P::x_var(16).opt()]).dl(&[]),
    ai("8004", "GIAI", X30).dl(&[&["7040"]]),
    ai("8005", "PRICE PER UNIT", N6).req(R01_02),
    ai("8006", "ITIP", &[P::n(14).lint(CSUM), P::n(4).lint(Lint::PieceOfTotal)])
        .ex(&["01", "37"]).dl(&[&["22", "10", "21"]]),
    ai("8008", "PROD TIME", &[P::n(8).lint(Lint::YyMmDdHh), P::n_var(4).lint(Lint::MmOptSs).opt()])
        .req(R01_02),
    ai("8017", "GSRN - PROVIDER", N18_CSUM).ex(&["8018"]).dl(&[&["8019"]]),
    ai("8018", "GSRN - RECIPIENT", N18_CSUM).ex(&["8017"]).dl(&[&["8019"]]),
    ai("8019", "SRIN", &[P::n_var(10)]).req(&[&["8017", "8018"]]),
    ai("8020", "REF No.", &[P::x_var(25)]).req(&[&["415"]]),
    ai("8026", "ITIP CONTENT", &[P::n(14).lint(CSUM), P::n(4).lint(Lint::PieceOfTotal)])
        .req(&[&["37"]]).ex(&["02", "8006"]),
    ai("90", "INTERNAL", X30),
    AiEntry::range("91", "99", "INTERNAL", &[P::x_var(90)]),
];
