"""Distributions are plausible: ages 0-17, growth and vitals in physiological ranges, time
series that behave clinically, and case mixes that differ by profile as designed."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from connector.sampledata import PROFILES, growth, reference_date
from connector.sampledata.codes import CHD_KINDS, DIAGNOSES, DRUGS

from .conftest import SEED, Resources

Hospitals = dict[str, tuple[Path, Resources]]
REF = reference_date(SEED)

# Wide physiological bounds by age band (years): weight kg, height cm.
GROWTH_BOUNDS = [
    (0, 1, (1.8, 15.5), (41.0, 87.0)),
    (1, 3, (5.5, 24.0), (63.0, 112.0)),
    (3, 6, (8.0, 35.0), (81.0, 135.0)),
    (6, 10, (11.5, 60.0), (98.0, 160.0)),
    (10, 14, (17.0, 95.0), (117.0, 188.0)),
    (14, 18.1, (26.0, 120.0), (135.0, 205.0)),
]
VALUE_BOUNDS = {
    "8867-4": (40, 230),  # heart rate
    "9279-1": (8, 90),  # respiratory rate
    "8310-5": (34.5, 42.0),  # temperature
    "59408-5": (60, 100),  # SpO2
    "2524-7": (0.3, 15.0),  # lactate
    "1988-5": (0.0, 400.0),  # CRP
    "6690-2": (0.5, 50.0),  # white cells
    "33959-8": (0.01, 150.0),  # procalcitonin
    "4548-4": (4.0, 15.0),  # HbA1c
    "3209-4": (0.0, 50.0),  # factor VIII in haemophilia A
    "3187-2": (0.0, 50.0),  # factor IX in haemophilia B
    "33762-6": (10.0, 40000.0),  # NT-proBNP
    "9843-4": (30.0, 54.0),  # head circumference under 2
    "39156-5": (10.0, 38.0),  # BMI
    "8339-4": (350.0, 5500.0),  # birth weight, g
    "76516-4": (23.0, 42.0),  # gestational age at birth, weeks
}
# Before term-equivalent age (postmenstrual age under 40 weeks): weight kg, length cm, head cm.
PRETERM_BOUNDS = {"29463-7": (0.35, 4.8), "8302-2": (25.0, 58.0), "9843-4": (18.0, 38.0)}
BIRTH_WEIGHT, GESTATION, BODY_WEIGHT = "8339-4", "76516-4", "29463-7"


def _age(birth: date, when: str) -> float:
    d = (
        datetime.fromisoformat(when.replace("Z", "+00:00")).date()
        if "T" in when
        else (date.fromisoformat(when))
    )
    return (d - birth).days / 365.25


def _births(data: Resources) -> dict[str, date]:
    return {f"Patient/{p['id']}": date.fromisoformat(p["birthDate"]) for p in data["Patient"]}


def _code(resource: dict[str, Any]) -> str:
    concept = resource.get("code") or resource["medicationCodeableConcept"]
    code: str = concept["coding"][0]["code"]
    return code


def _gestations(data: Resources) -> dict[str, float]:
    """Gestational age at birth (weeks) of the patients whose birth is recorded."""
    return {
        o["subject"]["reference"]: o["valueQuantity"]["value"]
        for o in data["Observation"]
        if _code(o) == GESTATION
    }


def _corrected_age(age: float, weeks: float | None) -> float:
    """Age corrected for prematurity (years; negative before term-equivalent age)."""
    return age if weeks is None else age - (40.0 - weeks) * 7 / 365.25


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_ages_are_0_to_17_and_events_between_birth_and_reference_date(
    hospitals: Hospitals, profile: str
) -> None:
    _, data = hospitals[profile]
    births = _births(data)
    ages = []
    for birth in births.values():
        years = REF.year - birth.year - ((REF.month, REF.day) < (birth.month, birth.day))
        assert 0 <= years <= 17
        assert birth < REF
        ages.append(years)
    assert min(ages) == 0 and max(ages) == 17
    assert sum(a == 0 for a in ages) > len(ages) * 0.08  # infants are common in hospital
    for enc in data["Encounter"]:
        assert enc["period"]["start"] < enc["period"]["end"]
    # Every recorded moment lies between the patient's birth and the reference date.
    fields = ("start", "end", "onsetDateTime", "abatementDateTime", "recordedDate",
              "effectiveDateTime", "performedDateTime", "authoredOn")  # fmt: skip
    for rtype in ("Encounter", "Condition", "Observation", "Procedure", "MedicationRequest"):
        for res in data[rtype]:
            birth = births[res["subject"]["reference"]]
            holders = [res, res.get("period", {}), res.get("performedPeriod", {})]
            moments = [h[f] for h in holders for f in fields if f in h]
            assert moments, res
            for moment in moments:
                assert birth <= date.fromisoformat(moment[:10]) < REF, (rtype, moment)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_growth_and_vitals_are_physiological(hospitals: Hospitals, profile: str) -> None:
    _, data = hospitals[profile]
    births, gestations = _births(data), _gestations(data)
    seen: dict[str, int] = defaultdict(int)
    for obs in data["Observation"]:
        code = obs["code"]["coding"][0]["code"]
        who = obs["subject"]["reference"]
        age = _age(births[who], obs["effectiveDateTime"])
        assert 0 <= age < 18
        seen[code] += 1
        if code == "85354-9":
            sys_bp, dia_bp = (c["valueQuantity"]["value"] for c in obs["component"])
            assert 40 <= sys_bp <= 170 and 20 <= dia_bp <= 120 and dia_bp < sys_bp
            continue
        value = obs["valueQuantity"]["value"]
        corrected = _corrected_age(age, gestations.get(who))
        if code in PRETERM_BOUNDS and corrected < 0:
            lo, hi = PRETERM_BOUNDS[code]
            assert lo <= value <= hi, (code, corrected, value)
        elif code in ("29463-7", "8302-2"):
            band = next(b for b in GROWTH_BOUNDS if b[0] <= max(corrected, 0.0) < b[1])
            lo, hi = band[2] if code == "29463-7" else band[3]
            assert lo <= value <= hi, (code, age, value)
        else:
            lo, hi = VALUE_BOUNDS[code]
            assert lo <= value <= hi, (code, age, value)
        if code == "9843-4":
            assert age < 2
    for code in ("29463-7", "8302-2", "39156-5", "9843-4", "8867-4", "59408-5"):
        assert seen[code] > 20, code


def test_growth_follows_the_curves(hospitals: Hospitals) -> None:
    _, data = hospitals["general"]
    births = _births(data)
    heights: dict[int, list[float]] = defaultdict(list)
    for obs in data["Observation"]:
        if obs["code"]["coding"][0]["code"] == "8302-2":
            age = _age(births[obs["subject"]["reference"]], obs["effectiveDateTime"])
            heights[int(age)].append(obs["valueQuantity"]["value"])
    # Mean height per year of age rises, and sits near the WHO/CDC medians.
    means = [mean(heights[a]) for a in range(0, 18) if len(heights[a]) >= 5]
    assert len(means) >= 15
    assert all(b > a - 2 for a, b in zip(means, means[1:], strict=False))
    assert 130 < mean(heights[9] + heights[10]) < 145
    assert 155 < mean(heights[16]) < 180


def _patients_with(data: Resources, codes: set[str]) -> set[str]:
    return {
        c["subject"]["reference"]
        for c in data["Condition"]
        if c["code"]["coding"][0]["code"] in codes
    }


def test_case_mix_differs_by_profile_as_designed(hospitals: Hospitals) -> None:
    chd = {DIAGNOSES[k].snomed for k in CHD_KINDS}
    sepsis = {DIAGNOSES["sepsis"].snomed}
    haemo = {DIAGNOSES["haemophilia_a"].snomed, DIAGNOSES["haemophilia_b"].snomed}
    share: dict[str, dict[str, float]] = {}
    for name, (_, data) in hospitals.items():
        n = len(data["Patient"])
        share[name] = {
            "chd": len(_patients_with(data, chd)) / n,
            "sepsis": len(_patients_with(data, sepsis)) / n,
            "haemophilia": len(_patients_with(data, haemo)) / n,
        }
    assert share["cardiac"]["chd"] > 0.25
    assert share["cardiac"]["chd"] > 4 * share["general"]["chd"]
    assert share["picu"]["sepsis"] > 4 * share["general"]["sepsis"]
    assert share["haemophilia"]["haemophilia"] > 0.2
    assert share["general"]["haemophilia"] < 0.02
    for name in ("general", "cardiac", "picu"):
        assert share["haemophilia"]["haemophilia"] > 10 * max(share[name]["haemophilia"], 0.001)


def test_haemophilia_is_x_linked_with_low_factor_levels(hospitals: Hospitals) -> None:
    _, data = hospitals["haemophilia"]
    sex = {f"Patient/{p['id']}": p["gender"] for p in data["Patient"]}
    a = _patients_with(data, {DIAGNOSES["haemophilia_a"].snomed})
    b = _patients_with(data, {DIAGNOSES["haemophilia_b"].snomed})
    assert len(a) > 2 * len(b) > 0
    assert sum(sex[p] == "male" for p in a | b) >= 0.9 * len(a | b)
    levels = defaultdict(list)
    for obs in data["Observation"]:
        code = obs["code"]["coding"][0]["code"]
        if code in ("3209-4", "3187-2"):
            levels[code].append(obs["valueQuantity"]["value"])
            assert obs["subject"]["reference"] in (a if code == "3209-4" else b)
    assert min(levels["3209-4"]) < 1.0  # severe cases exist
    meds = {m["medicationCodeableConcept"]["coding"][0]["code"] for m in data["MedicationRequest"]}
    assert {"B02BD02", "B02BD04"} <= meds


def test_sepsis_picu_stays_have_recovering_time_series(hospitals: Hospitals) -> None:
    _, data = hospitals["picu"]
    sepsis_codes = {DIAGNOSES["sepsis"].snomed, DIAGNOSES["septic_shock"].snomed}
    stays = {
        f"Encounter/{e['id']}"
        for e in data["Encounter"]
        if e["serviceType"]["coding"][0]["code"] == "picu"
        and e["reasonCode"][0]["coding"][0]["code"] in sepsis_codes
    }
    assert len(stays) > 50
    series: dict[str, dict[str, list[tuple[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for obs in data["Observation"]:
        enc = obs["encounter"]["reference"]
        if enc in stays and "valueQuantity" in obs:
            code = obs["code"]["coding"][0]["code"]
            series[enc][code].append((obs["effectiveDateTime"], obs["valueQuantity"]["value"]))
    improved = 0
    for enc in stays:
        s = series[enc]
        assert len(s["8867-4"]) >= 7  # 4-hourly heart rate on day one
        for code in ("9279-1", "8310-5", "59408-5", "2524-7", "1988-5", "6690-2", "33959-8"):
            assert s[code], code
        lactate = [v for _, v in sorted(s["2524-7"])]
        improved += lactate[-1] < lactate[0]
    assert improved > 0.9 * len(stays)


def test_weight_tracks_a_centile_per_child(hospitals: Hospitals) -> None:
    _, data = hospitals["general"]
    per_child: dict[str, list[float]] = defaultdict(list)
    births, gestations = _births(data), _gestations(data)
    sexes = {f"Patient/{p['id']}": p["gender"] for p in data["Patient"]}
    for obs in data["Observation"]:
        if obs["code"]["coding"][0]["code"] == "29463-7":
            ref = obs["subject"]["reference"]
            age = _age(births[ref], obs["effectiveDateTime"])
            age = _corrected_age(age, gestations.get(ref))
            if age < 0:
                continue  # before term-equivalent age: the preterm curves (below)
            z = math.log(obs["valueQuantity"]["value"] / growth.weight_median(age, sexes[ref]))
            per_child[ref].append(z / growth.weight_sigma(age))
    zs = [z for v in per_child.values() for z in v]
    assert abs(mean(zs)) < 0.25
    spreads = [max(v) - min(v) for v in per_child.values() if len(v) >= 3]
    assert spreads and mean(spreads) < 1.0


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_patient_has_care_with_growth_measurements(
    hospitals: Hospitals, profile: str
) -> None:
    _, data = hospitals[profile]
    with_encounter = {e["subject"]["reference"] for e in data["Encounter"]}
    weighed = {
        o["subject"]["reference"]
        for o in data["Observation"]
        if o["code"]["coding"][0]["code"] == "29463-7"
    }
    patients = {f"Patient/{p['id']}" for p in data["Patient"]}
    assert with_encounter == patients
    assert weighed == patients


def test_profiles_are_documented() -> None:
    import connector.sampledata as package

    assert package.__doc__ is not None
    for name, profile in PROFILES.items():
        assert f"``{name}``" in package.__doc__
        assert f"{profile.default_patients:,}" in package.__doc__


def test_cardiac_pathways_match_the_lesion(hospitals: Hospitals) -> None:
    _, data = hospitals["cardiac"]
    by_patient: dict[str, set[str]] = defaultdict(set)
    for proc in data["Procedure"]:
        by_patient[proc["subject"]["reference"]].add(proc["code"]["coding"][0]["code"])
    lesion_of = {d.snomed: k for k, d in DIAGNOSES.items() if k in CHD_KINDS}
    repaired_tof = 0
    for cond in data["Condition"]:
        kind = lesion_of.get(cond["code"]["coding"][0]["code"])
        if kind is None:
            continue
        procs = by_patient[cond["subject"]["reference"]]
        assert "40701008" in procs  # every CHD patient had an echocardiogram
        if kind == "hlhs" and "233139006" in procs:  # Norwood
            assert cond["clinicalStatus"]["coding"][0]["code"] == "active"
        if kind == "tof":
            assert "abatementDateTime" not in cond  # repaired TOF is still TOF
            repaired_tof += "76025005" in procs
        if "abatementDateTime" in cond:
            assert kind in ("vsd", "asd", "pda")
            assert procs & {"76025005", "89814007", "112811009", "30123000", "441676000"}
    assert repaired_tof > 0


def _moments(resource: dict[str, Any]) -> list[str]:
    if "performedPeriod" in resource:
        return [resource["performedPeriod"]["start"], resource["performedPeriod"]["end"]]
    for key in ("effectiveDateTime", "performedDateTime", "authoredOn"):
        if key in resource:
            return [resource[key]]
    raise AssertionError(resource)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_everything_happens_during_its_encounter(hospitals: Hospitals, profile: str) -> None:
    """Measurements, procedures and orders fall inside their encounter's period (inpatient
    vitals used to run up to 4 h past discharge); only the birth record (weight, gestational
    age) is effective at birth, before the encounter it was recorded in."""
    _, data = hospitals[profile]
    births = _births(data)
    periods = {f"Encounter/{e['id']}": e["period"] for e in data["Encounter"]}
    checked = 0
    for rtype in ("Observation", "Procedure", "MedicationRequest"):
        for res in data[rtype]:
            period = periods[res["encounter"]["reference"]]
            for moment in _moments(res):
                if rtype == "Observation" and _code(res) in (BIRTH_WEIGHT, GESTATION):
                    assert moment[:10] == births[res["subject"]["reference"]].isoformat()
                    assert moment <= period["start"]
                else:
                    assert period["start"] <= moment <= period["end"], (rtype, moment, period)
                    checked += 1
    assert checked > 1000


# Doses a day of a MedicationRequest's frequency (the generator's dosage texts).
PER_DAY = {"once daily": 1, "three times daily with meals": 3}


def test_insulin_doses_are_in_the_usual_range(hospitals: Hospitals) -> None:
    """At diagnosis of type 1 diabetes: about 0.7-1.0 U/kg/day in all (ISPAD), 30-55 % of it
    basal (it was 1.6 U/kg/day: 0.4 U/kg per meal on top of 0.4 U/kg/day basal)."""
    basal_atc, bolus_atc = DRUGS["insulin_glargine"].atc, DRUGS["insulin_aspart"].atc
    orders = 0
    for _, data in hospitals.values():
        weights = _weights_by_encounter(data)
        daily: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for med in data["MedicationRequest"]:
            if _code(med) not in (basal_atc, bolus_atc):
                continue
            dosage = med["dosageInstruction"][0]
            per_day = next(n for text, n in PER_DAY.items() if dosage["text"].endswith(text))
            dose = dosage["doseAndRate"][0]["doseQuantity"]
            assert dose["code"] == "[iU]"
            daily[med["encounter"]["reference"]][_code(med)] += dose["value"] * per_day
            orders += 1
        for enc, doses in daily.items():
            assert set(doses) == {basal_atc, bolus_atc}, enc
            weight = weights[enc][0][1]
            total = sum(doses.values()) / weight
            assert 0.6 <= total <= 1.0, (enc, total)
            assert 0.3 <= doses[basal_atc] / sum(doses.values()) <= 0.55
    assert orders >= 20


def _weights_by_encounter(data: Resources) -> dict[str, list[tuple[str, float]]]:
    """Body weights (kg) recorded in each encounter, in time order."""
    found: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for obs in data["Observation"]:
        if _code(obs) == BODY_WEIGHT:
            found[obs["encounter"]["reference"]].append(
                (obs["effectiveDateTime"], obs["valueQuantity"]["value"])
            )
    return {enc: sorted(values) for enc, values in found.items()}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_prescription_has_the_weight_its_dose_came_from(
    hospitals: Hospitals, profile: str
) -> None:
    """Doses are per kg: the encounter of every order records a body weight by the time of
    the order, and the dose matches it (unless capped at the maximum dose)."""
    _, data = hospitals[profile]
    weights = _weights_by_encounter(data)
    drugs = {d.atc: d for d in DRUGS.values()}
    compared = 0
    for med in data["MedicationRequest"]:
        recorded = [w for when, w in weights.get(med["encounter"]["reference"], [])
                    if when <= med["authoredOn"]]  # fmt: skip
        assert recorded, med
        drug = drugs[_code(med)]
        dose = med["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        if "/kg" in drug.dose_unit or dose >= drug.max_dose or dose < 0.5:
            continue  # a rate per kg, a capped dose, or one dominated by rounding
        ratio = dose / (drug.dose_per_kg * recorded[-1])
        # Bleeds are treated with about 1.5 times the prophylactic factor dose.
        assert abs(ratio - 1) < 0.15 or abs(ratio - 1.5) < 0.2, (drug.display, ratio)
        compared += 1
    assert compared > 0.5 * len(data["MedicationRequest"])


def test_birth_weight_and_gestational_age(hospitals: Hospitals) -> None:
    """Births are recorded (LOINC 8339-4, 76516-4), preterm infants exist and spend their
    first weeks in the NICU, and birth weight rises with gestational age."""
    by_band: dict[str, list[float]] = defaultdict(list)
    young = with_birth = young_preterm = 0
    for _, data in hospitals.values():
        births = _births(data)
        gestations = _gestations(data)
        birth_weights: dict[str, float] = {}
        for obs in data["Observation"]:
            if _code(obs) == BIRTH_WEIGHT:
                assert obs["subject"]["reference"] not in birth_weights  # one each
                birth_weights[obs["subject"]["reference"]] = obs["valueQuantity"]["value"]
                assert obs["valueQuantity"]["code"] == "g"
        assert set(birth_weights) == set(gestations)
        nicu = {
            e["subject"]["reference"]: e
            for e in data["Encounter"]
            if e["serviceType"]["coding"][0]["code"] == "nicu"
        }
        preterm = {
            c["subject"]["reference"]
            for c in data["Condition"]
            if c["code"]["coding"][0]["code"] == DIAGNOSES["preterm"].snomed
        }
        for who, weeks in gestations.items():
            band = "term" if weeks >= 37 else ("very preterm" if weeks < 32 else "preterm")
            by_band[band].append(birth_weights[who])
            if weeks < 37:
                assert who in nicu and who in preterm
                assert nicu[who]["period"]["start"][:10] == births[who].isoformat()
                assert nicu[who]["class"]["code"] == "IMP"
            else:
                assert 2000 <= birth_weights[who] <= 5200
        assert set(nicu) == preterm <= set(gestations)
        for who, birth in births.items():
            if (REF - birth).days < 2 * 365:
                young += 1
                with_birth += who in gestations
                young_preterm += gestations.get(who, 40.0) < 37
    assert young and with_birth > 0.4 * young  # most young children have a birth record
    # Preterm births: 6-9 % in Europe, more among a children's hospital's infants.
    assert 0.06 < young_preterm / young < 0.2
    assert by_band["very preterm"], "no infant born before 32 weeks"
    assert 350 <= min(by_band["very preterm"]) and max(by_band["very preterm"]) < 2600
    assert mean(by_band["very preterm"]) < mean(by_band["preterm"]) < mean(by_band["term"])
    assert 3100 < mean(by_band["term"]) < 3700
