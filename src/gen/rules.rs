//! The twenty audit rules of SPEC §8, by name. A planted scenario is named after the
//! rule it is planted to trigger.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    IdleFunded,
    StalledFunded,
    VoucherDependence,
    PowerResale,
    ResaleWithoutPermit,
    LandBanking,
    UndeployedGpus,
    PhantomCapacity,
    DuplicateSerial,
    DoublePledge,
    PriceAnomaly,
    SubsidyStacking,
    SubsidisedAssetSold,
    ReportingGap,
    PermitMissing,
    PowerOccupancyMismatch,
    MeterMismatch,
    InspectionShortfall,
    SubsidyConditionBreach,
    PueImplausible,
}

impl Rule {
    /// In the order of the SPEC §8 table.
    pub const ALL: [Rule; 20] = [
        Rule::IdleFunded,
        Rule::StalledFunded,
        Rule::VoucherDependence,
        Rule::PowerResale,
        Rule::ResaleWithoutPermit,
        Rule::LandBanking,
        Rule::UndeployedGpus,
        Rule::PhantomCapacity,
        Rule::DuplicateSerial,
        Rule::DoublePledge,
        Rule::PriceAnomaly,
        Rule::SubsidyStacking,
        Rule::SubsidisedAssetSold,
        Rule::ReportingGap,
        Rule::PermitMissing,
        Rule::PowerOccupancyMismatch,
        Rule::MeterMismatch,
        Rule::InspectionShortfall,
        Rule::SubsidyConditionBreach,
        Rule::PueImplausible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::IdleFunded => "idle-funded",
            Rule::StalledFunded => "stalled-funded",
            Rule::VoucherDependence => "voucher-dependence",
            Rule::PowerResale => "power-resale",
            Rule::ResaleWithoutPermit => "resale-without-permit",
            Rule::LandBanking => "land-banking",
            Rule::UndeployedGpus => "undeployed-gpus",
            Rule::PhantomCapacity => "phantom-capacity",
            Rule::DuplicateSerial => "duplicate-serial",
            Rule::DoublePledge => "double-pledge",
            Rule::PriceAnomaly => "price-anomaly",
            Rule::SubsidyStacking => "subsidy-stacking",
            Rule::SubsidisedAssetSold => "subsidised-asset-sold",
            Rule::ReportingGap => "reporting-gap",
            Rule::PermitMissing => "permit-missing",
            Rule::PowerOccupancyMismatch => "power-occupancy-mismatch",
            Rule::MeterMismatch => "meter-mismatch",
            Rule::InspectionShortfall => "inspection-shortfall",
            Rule::SubsidyConditionBreach => "subsidy-condition-breach",
            Rule::PueImplausible => "pue-implausible",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
