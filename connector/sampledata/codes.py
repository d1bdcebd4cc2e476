"""Terminology the sample data uses: SNOMED CT, ICD-10 (WHO), LOINC with UCUM units, ATC.

Every concept is built once as a JSON-ready dict and shared by all resources that use it (the
generator never mutates them), so the hot loop only builds the per-resource parts.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

SNOMED: Final = "http://snomed.info/sct"
ICD10: Final = "http://hl7.org/fhir/sid/icd-10"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
ATC: Final = "http://www.whocc.no/atc"
V3_ACT: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ROLE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"

Json = dict[str, Any]


def concept(system: str, code: str, display: str) -> Json:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


class Diagnosis(NamedTuple):
    """A Condition.code with both a SNOMED CT and an ICD-10 coding."""

    snomed: str
    snomed_display: str
    icd10: str
    icd10_display: str

    def codeable(self) -> Json:
        return {
            "coding": [
                {"system": SNOMED, "code": self.snomed, "display": self.snomed_display},
                {"system": ICD10, "code": self.icd10, "display": self.icd10_display},
            ],
            "text": self.snomed_display,
        }


class Measure(NamedTuple):
    """An Observation code (LOINC) with its UCUM unit and category."""

    loinc: str
    display: str
    unit: str
    category: str  # vital-signs | laboratory | exam


class Drug(NamedTuple):
    """A medication (ATC) with a weight-based dose, for MedicationRequest.dosageInstruction."""

    atc: str
    display: str
    dose_per_kg: float
    max_dose: float
    dose_unit: str  # UCUM
    route: str
    frequency: str


DIAGNOSES: Final[dict[str, Diagnosis]] = {
    # Congenital heart disease
    "vsd": Diagnosis("30288003", "Ventricular septal defect", "Q21.0", "Ventricular septal defect"),
    "asd": Diagnosis("70142008", "Atrial septal defect", "Q21.1", "Atrial septal defect"),
    "tof": Diagnosis("86299006", "Tetralogy of Fallot", "Q21.3", "Tetralogy of Fallot"),
    "pda": Diagnosis("83330001", "Patent ductus arteriosus", "Q25.0", "Patent ductus arteriosus"),
    "coa": Diagnosis("7305005", "Coarctation of aorta", "Q25.1", "Coarctation of aorta"),
    "hlhs": Diagnosis(
        "62067003",
        "Hypoplastic left heart syndrome",
        "Q23.4",
        "Hypoplastic left heart syndrome",
    ),
    # Sepsis in paediatric intensive care
    "sepsis": Diagnosis("91302008", "Sepsis", "A41.9", "Sepsis, unspecified"),
    "septic_shock": Diagnosis("76571007", "Septic shock", "R57.2", "Septic shock"),
    "pneumonia": Diagnosis("233604007", "Pneumonia", "J18.9", "Pneumonia, unspecified"),
    "uti": Diagnosis(
        "68566005",
        "Urinary tract infectious disease",
        "N39.0",
        "Urinary tract infection, site not specified",
    ),
    # Haemophilia
    "haemophilia_a": Diagnosis(
        "28293008",
        "Hereditary factor VIII deficiency disease",
        "D66",
        "Hereditary factor VIII deficiency",
    ),
    "haemophilia_b": Diagnosis(
        "41788008",
        "Hereditary factor IX deficiency disease",
        "D67",
        "Hereditary factor IX deficiency",
    ),
    # Common paediatric conditions
    "asthma": Diagnosis("195967001", "Asthma", "J45.9", "Asthma, unspecified"),
    "bronchiolitis": Diagnosis(
        "57089007",
        "Respiratory syncytial virus bronchiolitis",
        "J21.0",
        "Acute bronchiolitis due to respiratory syncytial virus",
    ),
    "otitis": Diagnosis("65363002", "Otitis media", "H66.9", "Otitis media, unspecified"),
    "t1d": Diagnosis(
        "46635009",
        "Type 1 diabetes mellitus",
        "E10.9",
        "Insulin-dependent diabetes mellitus without complications",
    ),
    "epilepsy": Diagnosis("84757009", "Epilepsy", "G40.9", "Epilepsy, unspecified"),
    # Prematurity (ICD-10 separates birth before 28 completed weeks)
    "preterm": Diagnosis("395507008", "Premature infant", "P07.3", "Other preterm infants"),
    "extremely_preterm": Diagnosis("395507008", "Premature infant", "P07.2", "Extreme immaturity"),
}

CHD_KINDS: Final = ("vsd", "asd", "tof", "pda", "coa", "hlhs")

MEASURES: Final[dict[str, Measure]] = {
    "heart_rate": Measure("8867-4", "Heart rate", "/min", "vital-signs"),
    "resp_rate": Measure("9279-1", "Respiratory rate", "/min", "vital-signs"),
    "temperature": Measure("8310-5", "Body temperature", "Cel", "vital-signs"),
    "spo2": Measure(
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        "%",
        "vital-signs",
    ),
    "bp": Measure("85354-9", "Blood pressure panel with all children optional", "", "vital-signs"),
    "bp_sys": Measure("8480-6", "Systolic blood pressure", "mm[Hg]", "vital-signs"),
    "bp_dia": Measure("8462-4", "Diastolic blood pressure", "mm[Hg]", "vital-signs"),
    "weight": Measure("29463-7", "Body weight", "kg", "vital-signs"),
    "height": Measure("8302-2", "Body height", "cm", "vital-signs"),
    "bmi": Measure("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "vital-signs"),
    "head_circ": Measure("9843-4", "Head Occipital-frontal circumference", "cm", "vital-signs"),
    "lactate": Measure(
        "2524-7", "Lactate [Moles/volume] in Serum or Plasma", "mmol/L", "laboratory"
    ),
    "crp": Measure(
        "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", "laboratory"
    ),
    "wbc": Measure(
        "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory"
    ),
    "pct": Measure(
        "33959-8", "Procalcitonin [Mass/volume] in Serum or Plasma", "ng/mL", "laboratory"
    ),
    "fviii": Measure(
        "3209-4",
        "Coagulation factor VIII activity actual/normal in Platelet poor plasma by "
        "Coagulation assay",
        "%",
        "laboratory",
    ),
    "fix": Measure(
        "3187-2",
        "Coagulation factor IX activity actual/normal in Platelet poor plasma by Coagulation assay",
        "%",
        "laboratory",
    ),
    "birth_weight": Measure("8339-4", "Birth weight Measured", "g", "vital-signs"),
    "gestational_age": Measure("76516-4", "Gestational age--at birth", "wk", "exam"),
    "hba1c": Measure("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory"),
    "ntprobnp": Measure(
        "33762-6",
        "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma",
        "pg/mL",
        "laboratory",
    ),
}

PROCEDURES: Final[dict[str, tuple[str, str]]] = {
    "echo": ("40701008", "Echocardiography"),
    "ecg": ("29303009", "Electrocardiographic procedure"),
    "cardiac_cath": ("41976001", "Cardiac catheterization"),
    "bypass": ("63697000", "Cardiopulmonary bypass operation"),
    "vsd_repair": ("76025005", "Correction of ventricular septal defect"),
    "vsd_device": ("89814007", "Ventricular septal defect device closure"),
    "asd_repair": ("112811009", "Atrial septal defect repair"),
    "asd_device": ("30123000", "Percutaneous prosthetic closure of atrial septal defect"),
    "bt_shunt": ("13662000", "Blalock-Taussig shunt, pulmonary-subclavian artery anastomosis"),
    "pda_device": ("441676000", "Patent ductus arteriosus coil or device closure"),
    "coa_repair": ("274022008", "Repair of coarctation of aorta"),
    "coa_balloon": ("308696000", "Coarctation of the aorta balloon angioplasty"),
    "norwood": ("233139006", "Norwood type operation"),
    "glenn": ("444034006", "Right-sided bidirectional Glenn shunt procedure"),
    "fontan": ("427886002", "Lateral-caval Fontan procedure"),
    "ventilation": ("40617009", "Artificial respiration"),
    "blood_culture": ("30088009", "Blood culture"),
    "eeg": ("54550000", "Electroencephalogram"),
}

DRUGS: Final[dict[str, Drug]] = {
    # antibiotics and vasoactives (sepsis, otitis)
    "ceftriaxone": Drug("J01DD04", "ceftriaxone", 80, 4000, "mg", "intravenous", "once daily"),
    "cefotaxime": Drug("J01DD01", "cefotaxime", 50, 2000, "mg", "intravenous", "every 6 hours"),
    "vancomycin": Drug("J01XA01", "vancomycin", 15, 750, "mg", "intravenous", "every 6 hours"),
    "meropenem": Drug("J01DH02", "meropenem", 20, 1000, "mg", "intravenous", "every 8 hours"),
    "gentamicin": Drug("J01GB03", "gentamicin", 7, 400, "mg", "intravenous", "once daily"),
    "amoxicillin": Drug("J01CA04", "amoxicillin", 30, 1000, "mg", "oral", "every 8 hours"),
    "noradrenaline": Drug(
        "C01CA03", "norepinephrine", 0.1, 2, "ug/kg/min", "intravenous", "continuous infusion"
    ),
    "paracetamol": Drug("N02BE01", "paracetamol", 15, 1000, "mg", "oral", "every 6 hours"),
    # cardiac
    "furosemide": Drug("C03CA01", "furosemide", 1, 40, "mg", "oral", "twice daily"),
    "enalapril": Drug("C09AA02", "enalapril", 0.1, 10, "mg", "oral", "twice daily"),
    "aspirin": Drug("B01AC06", "acetylsalicylic acid", 5, 100, "mg", "oral", "once daily"),
    "propranolol": Drug("C07AA05", "propranolol", 1, 40, "mg", "oral", "three times daily"),
    # haemophilia
    "factor_viii": Drug(
        "B02BD02", "coagulation factor VIII", 30, 3000, "[iU]", "intravenous", "three times weekly"
    ),
    "factor_ix": Drug(
        "B02BD04", "coagulation factor IX", 40, 4000, "[iU]", "intravenous", "twice weekly"
    ),
    "emicizumab": Drug("B02BX06", "emicizumab", 3, 300, "mg", "subcutaneous", "once weekly"),
    "tranexamic_acid": Drug(
        "B02AA02", "tranexamic acid", 15, 1000, "mg", "oral", "three times daily"
    ),
    # common conditions
    "salbutamol": Drug("R03AC02", "salbutamol", 0.1, 0.2, "mg", "inhalation", "as needed"),
    "budesonide": Drug("R03BA02", "budesonide", 0.01, 0.4, "mg", "inhalation", "twice daily"),
    "prednisolone": Drug("H02AB06", "prednisolone", 1, 40, "mg", "oral", "once daily"),
    # Multiple daily injections at diagnosis: about 0.8 U/kg/day in all (ISPAD: 0.7-1.0 before
    # puberty), a bit under half of it basal.
    "insulin_glargine": Drug(
        "A10AE04", "insulin glargine", 0.35, 40, "[iU]", "subcutaneous", "once daily"
    ),
    "insulin_aspart": Drug(
        "A10AB05",
        "insulin aspart",
        0.15,
        15,
        "[iU]",
        "subcutaneous",
        "three times daily with meals",
    ),
    "levetiracetam": Drug("N03AX14", "levetiracetam", 20, 1500, "mg", "oral", "twice daily"),
    "valproate": Drug("N03AG01", "valproic acid", 15, 1000, "mg", "oral", "twice daily"),
    # neonatal intensive care (apnoea of prematurity; maintenance dose of caffeine citrate)
    "caffeine": Drug("N06BC01", "caffeine citrate", 5, 50, "mg", "intravenous", "once daily"),
}

ENCOUNTER_CLASSES: Final[dict[str, Json]] = {
    "AMB": {"system": V3_ACT, "code": "AMB", "display": "ambulatory"},
    "EMER": {"system": V3_ACT, "code": "EMER", "display": "emergency"},
    "IMP": {"system": V3_ACT, "code": "IMP", "display": "inpatient encounter"},
}

# Hospital units: key -> (v3 RoleCode for Location.type, unit name, class of encounters held there)
UNITS: Final[dict[str, tuple[str, str, str]]] = {
    "outpatients": ("PEDC", "Paediatric outpatient clinic", "AMB"),
    "cardiology": ("PEDCARD", "Paediatric cardiology clinic", "AMB"),
    "haematology": ("PEDHEM", "Paediatric haematology clinic", "AMB"),
    "emergency": ("ER", "Paediatric emergency department", "EMER"),
    "endocrinology": ("PEDE", "Paediatric endocrinology clinic", "AMB"),
    "ward": ("PEDU", "Paediatric ward", "IMP"),
    "picu": ("PEDICU", "Paediatric intensive care unit", "IMP"),
    "nicu": ("PEDNICU", "Neonatal intensive care unit", "IMP"),
}
