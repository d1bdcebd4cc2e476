"""Realistic, deterministic sample data of a European children's hospital, as Bulk NDJSON.

``generate(out_dir, patients=N, seed=S, profile=NAME)`` writes ``Organization``, ``Location``,
``Patient``, ``Encounter``, ``Condition``, ``Observation``, ``Procedure`` and
``MedicationRequest`` files named like ``$export`` output (``Patient.000.ndjson``, a new
``.001`` file every 100,000 lines) and returns the resource counts per type. The same
arguments always give byte-identical files: one seeded ``random.Random`` drives everything and
all dates are relative to :func:`reference_date` (derived from the seed, never the clock).

Patients are 0-17 years old on the reference date. Each has a gestational age at birth, routine
outpatient visits with growth measurements (weight, height, BMI or head circumference, along
WHO/CDC-like curves at the age corrected for prematurity; a child keeps its centile) and, by the
profile's case mix, care pathways for:

- preterm birth (10 % of patients, 2 % before 32 weeks): a neonatal intensive care stay from
  birth with birth weight (LOINC 8339-4), gestational age (76516-4), vitals, weekly growth,
  caffeine and ventilation for the most immature; half of the term infants born within the
  last three years have their birth recorded at a newborn examination;
- congenital heart disease (VSD, ASD, PDA, tetralogy of Fallot, coarctation, HLHS):
  echocardiography, ECG, NT-proBNP, catheter or open-heart interventions with PICU stays;
- sepsis in paediatric intensive care: emergency presentation then PICU, with vitals (heart
  rate, respiratory rate, temperature, SpO2, blood pressure) and labs (lactate, CRP, white
  cells, procalcitonin) as time series, antibiotics, vasoactives and ventilation for shock;
  some children die in the PICU (``Patient.deceasedDateTime``, discharge disposition
  ``exp``), and nothing is recorded after death;
- haemophilia A/B: factor VIII/IX activity by severity, factor concentrate or emicizumab
  prophylaxis, bleeds treated on demand;
- asthma, RSV bronchiolitis, otitis media, type 1 diabetes (HbA1c; basal-bolus insulin of
  about 0.8 U/kg/day) and epilepsy.

Codes: SNOMED CT and ICD-10 on every Condition, LOINC with UCUM units on Observations, SNOMED CT
on Procedures, ATC on MedicationRequests, v3 ActCode encounter classes (AMB, EMER, IMP; PICU
and NICU stays are IMP encounters at the PICU or NICU Location with service type ``picu`` or
``nicu``). Doses are per kg (capped at an adult dose), and every order's encounter records the
body weight it was calculated from; everything recorded in an encounter happens during it (the
birth record is effective at the moment of birth).

Profiles (``PROFILES``; size is the CLI default when ``--patients`` is not given). The shares
are the profile's prevalence parameters; realised shares are somewhat lower for conditions
that need a minimum age or a recent enough episode (e.g. asthma from 2.5 years):

================  ========  ==============================================================
name              patients  case mix
================  ========  ==============================================================
``general``       5,000     general children's hospital: mostly common conditions
                            (asthma 12 %, otitis 25 %), CHD 3 %, sepsis 2 %
``cardiac``       2,000     congenital heart disease centre: CHD 35 %, cardiac surgery and
                            post-operative PICU stays
``picu``          3,000     tertiary hospital with a large PICU: sepsis 25 %, 35 % of it
                            septic shock
``haemophilia``   500       haemophilia centre: haemophilia A 25 %, B 6 % (X-linked, so
                            nearly all boys)
================  ========  ==============================================================
"""

from connector.sampledata.generator import RESOURCE_TYPES, generate, reference_date
from connector.sampledata.profiles import PROFILES, Profile

__all__ = ["PROFILES", "RESOURCE_TYPES", "Profile", "generate", "reference_date"]
