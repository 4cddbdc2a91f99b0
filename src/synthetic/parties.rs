//! The organisations of the synthetic world: the authority, a permitting bureau and a
//! grid utility per province, grantors, lenders, inspectors, GPU brokers and the
//! operators, each with one key derived from the seed. All names are fictional.

use ed25519_dalek::SigningKey;

use super::calendar::{Instant, Month, instant};
use super::model::{Body, Event};
use crate::entry::Role;

pub(crate) struct City {
    pub name: &'static str,
    pub slug: &'static str,
    pub lat_e6: i64,
    pub lon_e6: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    Central,
    West,
    Southwest,
}

pub(crate) struct Province {
    pub name: &'static str,
    /// Lowercase code used in ids.
    pub code: &'static str,
    /// Uppercase code used in land parcel numbers.
    pub parcel: &'static str,
    /// Numeric prefix of registration numbers.
    pub admin: &'static str,
    pub region: Region,
    pub grid: &'static str,
    pub cities: &'static [City],
}

impl Province {
    /// The provinces whose cheap green power and land drew subsidised compute.
    pub(crate) fn west(&self) -> bool {
        self.region == Region::West
    }
}

macro_rules! city {
    ($name:literal, $slug:literal, $lat:literal, $lon:literal) => {
        City {
            name: $name,
            slug: $slug,
            lat_e6: $lat,
            lon_e6: $lon,
        }
    };
}

pub(crate) const PROVINCES: &[Province] = &[
    Province {
        name: "Henan",
        code: "ha",
        parcel: "HA",
        admin: "4101",
        region: Region::Central,
        grid: "Central Plains Power Grid Co.",
        cities: &[
            city!("Zhengzhou", "zhengzhou", 34_746_600, 113_625_300),
            city!("Luoyang", "luoyang", 34_619_700, 112_454_000),
            city!("Kaifeng", "kaifeng", 34_797_300, 114_307_600),
            city!("Xinxiang", "xinxiang", 35_303_000, 113_926_800),
        ],
    },
    Province {
        name: "Guizhou",
        code: "gz",
        parcel: "GZ",
        admin: "5201",
        region: Region::Southwest,
        grid: "Qianling Grid Co.",
        cities: &[
            city!("Guiyang", "guiyang", 26_647_700, 106_630_200),
            city!("Gui'an", "guian", 26_419_000, 106_339_400),
            city!("Zunyi", "zunyi", 27_725_600, 106_927_400),
        ],
    },
    Province {
        name: "Inner Mongolia",
        code: "nm",
        parcel: "NM",
        admin: "1501",
        region: Region::West,
        grid: "Saibei Power Grid Co.",
        cities: &[
            city!("Hohhot", "hohhot", 40_842_400, 111_749_000),
            city!("Ulanqab", "ulanqab", 41_034_100, 113_132_600),
            city!("Ordos", "ordos", 39_608_300, 109_781_300),
            city!("Baotou", "baotou", 40_657_400, 109_840_400),
        ],
    },
    Province {
        name: "Ningxia",
        code: "nx",
        parcel: "NX",
        admin: "6405",
        region: Region::West,
        grid: "Helan Power Supply Co.",
        cities: &[
            city!("Zhongwei", "zhongwei", 37_500_300, 105_189_600),
            city!("Yinchuan", "yinchuan", 38_487_200, 106_230_900),
            city!("Shizuishan", "shizuishan", 38_983_900, 106_383_500),
        ],
    },
    Province {
        name: "Gansu",
        code: "gs",
        parcel: "GS",
        admin: "6210",
        region: Region::West,
        grid: "Hexi Corridor Grid Co.",
        cities: &[
            city!("Qingyang", "qingyang", 35_709_800, 107_643_600),
            city!("Lanzhou", "lanzhou", 36_061_100, 103_834_300),
            city!("Jiuquan", "jiuquan", 39_732_800, 98_494_500),
        ],
    },
    Province {
        name: "Qinghai",
        code: "qh",
        parcel: "QH",
        admin: "6301",
        region: Region::West,
        grid: "Sanjiangyuan Power Co.",
        cities: &[
            city!("Xining", "xining", 36_617_100, 101_778_200),
            city!("Gonghe", "gonghe", 36_284_300, 100_620_000),
            city!("Haidong", "haidong", 36_502_900, 102_104_000),
        ],
    },
    Province {
        name: "Hebei",
        code: "he",
        parcel: "HE",
        admin: "1307",
        region: Region::Central,
        grid: "Yanzhao Grid Co.",
        cities: &[
            city!("Zhangjiakou", "zhangjiakou", 40_767_500, 114_886_200),
            city!("Langfang", "langfang", 39_538_000, 116_683_800),
            city!("Chengde", "chengde", 40_951_700, 117_963_400),
        ],
    },
    Province {
        name: "Anhui",
        code: "ah",
        parcel: "AH",
        admin: "3402",
        region: Region::Central,
        grid: "Jianghuai Power Supply Co.",
        cities: &[
            city!("Wuhu", "wuhu", 31_334_500, 118_376_500),
            city!("Hefei", "hefei", 31_820_600, 117_227_200),
            city!("Bengbu", "bengbu", 32_916_300, 117_389_300),
        ],
    },
    Province {
        name: "Sichuan",
        code: "sc",
        parcel: "SC",
        admin: "5118",
        region: Region::Southwest,
        grid: "Bashu Power Grid Co.",
        cities: &[
            city!("Ya'an", "yaan", 29_980_500, 103_013_300),
            city!("Chengdu", "chengdu", 30_657_300, 104_065_800),
            city!("Yibin", "yibin", 28_751_800, 104_643_000),
        ],
    },
    Province {
        name: "Xinjiang",
        code: "xj",
        parcel: "XJ",
        admin: "6502",
        region: Region::West,
        grid: "Tianshan Power Grid Co.",
        cities: &[
            city!("Karamay", "karamay", 45_579_900, 84_889_200),
            city!("Hami", "hami", 42_818_600, 93_515_200),
            city!("Changji", "changji", 44_011_200, 87_308_200),
        ],
    },
];

const OPERATOR_STEMS: &[&str] = &[
    "Zhongyuan",
    "Huanghe",
    "Tianshan",
    "Qilian",
    "Helan",
    "Yinshan",
    "Kunlun",
    "Wuling",
    "Qinling",
    "Taihang",
    "Dabie",
    "Minjiang",
    "Jinsha",
    "Longmen",
    "Yunling",
    "Songhua",
    "Lancang",
    "Hexi",
    "Saibei",
    "Bashu",
    "Jianghuai",
    "Yanzhao",
    "Qianling",
    "Sanjiang",
];

const OPERATOR_SUFFIXES: &[(&str, &str)] = &[
    ("Compute", "compute"),
    ("Intelligent Computing", "aicompute"),
    ("Cloud Valley", "cloudvalley"),
    ("Digital Infrastructure", "digital"),
    ("Data Harbor", "dataharbor"),
    ("AI Park", "aipark"),
    ("Suanli Technology", "suanli"),
    ("Computing Power", "power"),
];

/// A lender and whether it is state-backed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lender {
    pub party: usize,
    pub state_backed: bool,
}

pub(crate) struct Party {
    pub org_id: String,
    pub name: String,
    pub role: Role,
    pub province: Option<usize>,
    pub key: SigningKey,
    pub public_hex: String,
}

/// Every organisation, by index, with lookups by function.
pub(crate) struct Parties {
    pub list: Vec<Party>,
    pub authority: usize,
    /// By province index.
    pub permitters: Vec<usize>,
    /// By province index.
    pub utilities: Vec<usize>,
    pub grantor_national: usize,
    pub grantor_central: usize,
    pub grantor_west: usize,
    pub grantor_southwest: usize,
    pub lenders: Vec<Lender>,
    pub regulators: Vec<usize>,
    pub brokers: Vec<usize>,
    pub operators: Vec<usize>,
}

/// The key of a party: Ed25519 seed = BLAKE3(seed || org id).
pub(crate) fn derive_key(seed: u64, org_id: &str) -> SigningKey {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(org_id.as_bytes());
    SigningKey::from_bytes(h.finalize().as_bytes())
}

/// The checkpoint key of the ledger (`keys/log.pem`).
pub(crate) fn log_key(seed: u64) -> SigningKey {
    derive_key(seed, "log")
}

impl Parties {
    /// All organisations of a world with `operators` operator organisations.
    pub(crate) fn build(seed: u64, operators: usize) -> Parties {
        let mut b = PartyBuilder {
            seed,
            list: Vec::new(),
        };
        let authority = b.add(
            "authority",
            "Data Center Ledger Authority",
            Role::Authority,
            None,
        );
        let permitters = PROVINCES
            .iter()
            .enumerate()
            .map(|(i, p)| {
                b.add(
                    &format!("permits-{}", p.code),
                    &format!("{} Compute Facilities Permitting Bureau", p.name),
                    Role::Permitter,
                    Some(i),
                )
            })
            .collect();
        let utilities = PROVINCES
            .iter()
            .enumerate()
            .map(|(i, p)| b.add(&format!("grid-{}", p.code), p.grid, Role::Utility, Some(i)))
            .collect();
        let grantor_national = b.add(
            "fund-national-hub",
            "National Compute Hub Development Fund",
            Role::Grantor,
            None,
        );
        let grantor_central = b.add(
            "fund-central-plains",
            "Central Plains Digital Economy Fund",
            Role::Grantor,
            Some(0),
        );
        let grantor_west = b.add(
            "fund-western-green",
            "Western Green Compute Programme Office",
            Role::Grantor,
            Some(2),
        );
        let grantor_southwest = b.add(
            "fund-southwest-corridor",
            "Southwest Compute Corridor Fund",
            Role::Grantor,
            Some(1),
        );
        let lenders = [
            (
                "bank-cathay-infra",
                "Cathay Infrastructure Development Bank",
                true,
            ),
            (
                "bank-policy-construction",
                "National Policy Construction Bank",
                true,
            ),
            (
                "bank-provincial-industry",
                "Provincial Industrial Investment Bank",
                true,
            ),
            ("bank-silk-road", "Silk Road Commercial Bank", false),
        ]
        .iter()
        .map(|(id, name, state)| Lender {
            party: b.add(id, name, Role::Lender, None),
            state_backed: *state,
        })
        .collect();
        let regulators = vec![
            b.add(
                "inspectorate-national",
                "National Compute Infrastructure Inspectorate",
                Role::Regulator,
                None,
            ),
            b.add(
                "inspectorate-energy",
                "Energy Efficiency Audit Office",
                Role::Regulator,
                None,
            ),
        ];
        let brokers = vec![
            b.add(
                "broker-victoria-harbour",
                "Victoria Harbour Compute Trading Ltd.",
                Role::Operator,
                None,
            ),
            b.add(
                "broker-lantau-hardware",
                "Lantau Hardware Exchange Ltd.",
                Role::Operator,
                None,
            ),
        ];
        let operators = (0..operators)
            .map(|i| {
                let stem = OPERATOR_STEMS[i % OPERATOR_STEMS.len()];
                let (suffix, suffix_slug) =
                    OPERATOR_SUFFIXES[(i / OPERATOR_STEMS.len()) % OPERATOR_SUFFIXES.len()];
                let round = i / (OPERATOR_STEMS.len() * OPERATOR_SUFFIXES.len());
                let (id, name) = if round == 0 {
                    (
                        format!("{}-{suffix_slug}", stem.to_lowercase()),
                        format!("{stem} {suffix} Co., Ltd."),
                    )
                } else {
                    (
                        format!("{}-{suffix_slug}-{}", stem.to_lowercase(), round + 1),
                        format!("{stem} {suffix} No. {} Co., Ltd.", round + 1),
                    )
                };
                b.add(&id, &name, Role::Operator, None)
            })
            .collect();
        Parties {
            list: b.list,
            authority,
            permitters,
            utilities,
            grantor_national,
            grantor_central,
            grantor_west,
            grantor_southwest,
            lenders,
            regulators,
            brokers,
            operators,
        }
    }

    /// The regional grantor of a province.
    pub(crate) fn regional_grantor(&self, province: usize) -> usize {
        match PROVINCES[province].region {
            Region::Central => self.grantor_central,
            Region::West => self.grantor_west,
            Region::Southwest => self.grantor_southwest,
        }
    }

    /// `org.register` and `key.grant` for every organisation but the authority (whose key
    /// the genesis entry introduces), signed by the authority on the world's first day.
    pub(crate) fn registrations(&self, start: Month) -> Vec<Event> {
        let t0: Instant = instant(start.first_day(), 0);
        let mut out = Vec::with_capacity(2 * self.list.len());
        let mut second: Instant = 0;
        for p in self.list.iter().filter(|p| p.role != Role::Authority) {
            let province = p.province.map(|i| PROVINCES[i].name);
            let admin = p.province.map_or("1100", |i| PROVINCES[i].admin);
            let digest = super::model::document_digest(&["registration", &p.org_id]);
            out.push(Event {
                ts: t0 + second,
                signer: self.authority,
                body: Body::OrgRegister {
                    org_id: p.org_id.clone(),
                    name: p.name.clone(),
                    role: p.role.as_str(),
                    province,
                    registration_no: format!("91{admin}MA{}", digest[..10].to_uppercase()),
                },
            });
            out.push(Event {
                ts: t0 + second + 1,
                signer: self.authority,
                body: Body::KeyGrant {
                    org_id: p.org_id.clone(),
                    public_key: p.public_hex.clone(),
                    label: format!("{} signing key", p.name),
                },
            });
            second += 2;
        }
        out
    }
}

struct PartyBuilder {
    seed: u64,
    list: Vec<Party>,
}

impl PartyBuilder {
    fn add(&mut self, org_id: &str, name: &str, role: Role, province: Option<usize>) -> usize {
        let key = derive_key(self.seed, org_id);
        let public_hex = crate::keys::public_hex(&key.verifying_key());
        self.list.push(Party {
            org_id: org_id.to_string(),
            name: name.to_string(),
            role,
            province,
            key,
            public_hex,
        });
        self.list.len() - 1
    }
}
