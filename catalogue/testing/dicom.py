"""Realistic synthetic DICOM studies for DICOMweb tests, made with pydicom.

Cancer-imaging protocols as a hospital PACS holds them (CT thorax for lung cancer, CT
abdomen/pelvis and 3-phase liver CT, multiparametric prostate MR, breast MR, brain MR, FDG PET/CT,
screening mammography), several series per study and several instances per series, each with an
8x8 pixel matrix so files stay around 2-3 kB. Headers carry everything a real modality writes and
a harvester must cope with: identifying patient data (name, id + issuer, birth date, sex, age),
UIDs, accession number, referring physician, institution name and address, station, vendor and
model, acquisition parameters. Everything is deterministic from a seed; UIDs are ``2.25.``
UUID-derived integers, so two runs with the same seed yield byte-identical files.

Two levels:

* :func:`make_study` encodes one study from explicit :class:`Patient` / :class:`Study` /
  :class:`Series` descriptions (``extra`` adds or overrides tags by keyword, ``omit`` deletes
  them: use both to craft malformed inputs);
* :func:`synthetic_population` draws patients with a cancer profile and their studies; each
  :class:`GeneratedStudy` has the specs, the ground truth (:class:`StudyTruth`) and
  ``instances()`` (the encoded files).

Example::

    population = synthetic_population(5, seed=7, n_studies=8)
    for generated in population:
        for data in generated.instances():
            orthanc.upload(data)
    truth = {g.truth.study_uid: g.truth for g in population}

The ground truth holds the values exactly as written to the files (for example ``HEAD`` for a
Siemens brain MR but ``BRAIN`` for GE, and, with ``quirks=True``, series without
``BodyPartExamined`` or studies without ``PatientAge``); :meth:`StudyTruth.identifying_values`
lists the strings that must never reach a pseudonymised store.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
)

__all__ = [
    "GeneratedStudy",
    "Institution",
    "Patient",
    "Series",
    "SeriesTruth",
    "Study",
    "StudyTruth",
    "dicom_uid",
    "make_study",
    "population_files",
    "study_truth",
    "synthetic_population",
]

SOP_CLASSES = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "PT": PositronEmissionTomographyImageStorage,
    "MG": DigitalMammographyXRayImageStorageForPresentation,
}
IMPLEMENTATION_CLASS_UID = "2.25.274102466963914870155367963744390513093"
IMPLEMENTATION_VERSION = "CATALOGUE_TEST"
MATRIX = 8  # rows and columns of every image


def dicom_uid(*parts: object) -> str:
    """A deterministic UID under the ``2.25`` (UUID) root: the first 128 bits of a SHA-256 of
    ``parts``, formatted as a UUID-derived decimal integer (at most 44 characters)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


# ---------------------------------------------------------------------------------------------
# Descriptions


@dataclass(frozen=True)
class Institution:
    name: str
    address: str
    station_prefix: str  # StationName is SH (16 chars): prefix + modality + number
    issuer: str  # IssuerOfPatientID
    accession_prefix: str


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str  # DICOM PN: Family^Given^Middle^Prefix^Suffix
    birth_date: date
    sex: str  # M, F or O
    issuer: str = ""
    other_ids: tuple[str, ...] = ()
    weight_kg: float | None = None
    size_m: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    study_uid: str
    accession_number: str
    study_date: date
    study_time: str  # HHMMSS
    description: str
    institution: Institution
    referring_physician: str = ""
    study_id: str = "1"
    with_patient_age: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    omit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Series:
    series_uid: str
    number: int
    modality: str  # CT, MR, PT or MG
    description: str
    body_part: str | None  # DICOM defined term (CID 4031 code meaning in upper case), or absent
    manufacturer: str
    model: str
    instances: int
    protocol: str = ""
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    laterality: str | None = (
        None  # MG: R or L (ImageLaterality); None for both breasts in one series
    )
    views: tuple[str, ...] = ()  # MG: ViewPosition per instance (CC, MLO)
    extra: Mapping[str, Any] = field(default_factory=dict)  # tags for every instance
    omit: frozenset[str] = frozenset()

    def sop_uids(self) -> list[str]:
        return [dicom_uid(self.series_uid, "instance", n) for n in range(1, self.instances + 1)]


# ---------------------------------------------------------------------------------------------
# Ground truth


@dataclass(frozen=True)
class SeriesTruth:
    series_uid: str
    number: int
    modality: str
    description: str
    body_part: str | None
    manufacturer: str
    model: str
    instance_count: int
    sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True)
class StudyTruth:
    """What the files of one study say, for comparison with what a harvester stored."""

    profile: str  # cancer profile that produced the study (lung, breast...); "" if hand-made
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    birth_date: date
    sex: str
    age_at_study: int  # whole years at the study date
    patient_age: str | None  # the PatientAge value written ("063Y"), None when omitted
    study_uid: str
    accession_number: str
    study_date: date
    study_time: str
    study_description: str
    institution_name: str
    institution_address: str
    referring_physician: str
    modalities: frozenset[str]
    body_parts: frozenset[str]  # values of BodyPartExamined present in the series
    manufacturers: frozenset[str]
    manufacturer: str  # of the first series (hybrid PET/CT scanners share one vendor)
    series_count: int
    instance_count: int
    series: tuple[SeriesTruth, ...]

    def identifying_values(self) -> set[str]:
        """Strings from the input that a pseudonymised store must never contain."""
        values = {
            self.patient_id,
            self.patient_name,
            *(part for part in self.patient_name.split("^") if len(part) > 3),
            self.birth_date.strftime("%Y%m%d"),
            self.birth_date.isoformat(),
            self.study_uid,
            self.accession_number,
            self.institution_address,
        }
        if self.referring_physician:
            values.add(self.referring_physician)
        for series in self.series:
            values.add(series.series_uid)
            values.update(series.sop_instance_uids)
        return {v for v in values if v}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (sets as sorted lists, dates as ISO strings)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, frozenset):
                out[name] = sorted(value)
            elif isinstance(value, date):
                out[name] = value.isoformat()
            elif name == "series":
                out[name] = [
                    {**s.__dict__, "sop_instance_uids": list(s.sop_instance_uids)} for s in value
                ]
            else:
                out[name] = value
        return out


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _age_string(birth: date, on: date) -> str:
    years = _age(birth, on)
    if years >= 2:
        return f"{years:03d}Y"
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    return f"{max(months, 0):03d}M"


def study_truth(
    patient: Patient, study: Study, series: Sequence[Series], *, profile: str = ""
) -> StudyTruth:
    """Ground truth of the study that :func:`make_study` encodes from the same arguments
    (computed without encoding)."""
    age = _age_string(patient.birth_date, study.study_date)
    return StudyTruth(
        profile=profile,
        patient_id=patient.patient_id,
        issuer_of_patient_id=patient.issuer,
        patient_name=patient.name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        age_at_study=_age(patient.birth_date, study.study_date),
        patient_age=age if study.with_patient_age and "PatientAge" not in study.omit else None,
        study_uid=study.study_uid,
        accession_number=study.accession_number,
        study_date=study.study_date,
        study_time=study.study_time,
        study_description=study.description,
        institution_name=study.institution.name,
        institution_address=study.institution.address,
        referring_physician=study.referring_physician,
        modalities=frozenset(s.modality for s in series),
        body_parts=frozenset(s.body_part for s in series if s.body_part),
        manufacturers=frozenset(s.manufacturer for s in series),
        manufacturer=series[0].manufacturer if series else "",
        series_count=len(series),
        instance_count=sum(s.instances for s in series),
        series=tuple(
            SeriesTruth(
                series_uid=s.series_uid,
                number=s.number,
                modality=s.modality,
                description=s.description,
                body_part=s.body_part,
                manufacturer=s.manufacturer,
                model=s.model,
                instance_count=s.instances,
                sop_instance_uids=tuple(s.sop_uids()),
            )
            for s in series
        ),
    )


# ---------------------------------------------------------------------------------------------
# Encoding


def _da(value: date) -> str:
    return value.strftime("%Y%m%d")


def _add_time(hhmmss: str, seconds: int) -> str:
    base = datetime.strptime(hhmmss[:6], "%H%M%S") + timedelta(seconds=seconds)
    return base.strftime("%H%M%S")


def _pixels(rng: random.Random, modality: str) -> bytes:
    """8x8 unsigned 16-bit little-endian pixels, 12 bits stored, a bright blob on a background
    (soft tissue for CT once rescaled by -1024)."""
    centre = (rng.uniform(2, 5), rng.uniform(2, 5))
    background = {"CT": 1000, "MR": 180, "PT": 40, "MG": 600}.get(modality, 100)
    values = []
    for row in range(MATRIX):
        for col in range(MATRIX):
            d2 = (row - centre[0]) ** 2 + (col - centre[1]) ** 2
            signal = background + int(900 / (1 + d2)) + rng.randint(0, 25)
            values.append(min(signal, 4095))
    return struct.pack(f"<{MATRIX * MATRIX}H", *values)


def _modality_tags(ds: Dataset, series: Series, index: int, rng: random.Random) -> None:
    """Acquisition attributes typical of the modality."""
    if series.modality == "CT":
        ds.KVP = rng.choice(["100", "120", "120", "140"])
        ds.SliceThickness = "5" if "5" in series.description else "1"
        ds.XRayTubeCurrent = rng.randint(80, 350)
        ds.ExposureTime = rng.randint(400, 1000)
        ds.ConvolutionKernel = rng.choice(["B30f", "Br40", "STANDARD", "B"])
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
    elif series.modality == "MR":
        ds.MagneticFieldStrength = (
            "3" if "Prisma" in series.model or "Premier" in series.model else "1.5"
        )
        ds.ScanningSequence = "EP" if "diff" in series.description.lower() else "SE"
        ds.SequenceVariant = "SK\\SP"
        ds.ScanOptions = "PFP"
        ds.MRAcquisitionType = "3D" if "3d" in series.description.lower() else "2D"
        ds.RepetitionTime = str(rng.choice([4.5, 600, 3500, 5200]))
        ds.EchoTime = str(rng.choice([1.8, 12, 89, 104]))
        ds.EchoTrainLength = rng.randint(1, 25)
        ds.ImagingFrequency = "123.25" if ds.MagneticFieldStrength == "3" else "63.68"
        ds.SliceThickness = "3"
    elif series.modality == "PT":
        ds.Units = "BQML"
        ds.DecayCorrection = "START"
        corrected = (
            ["DECY", "ATTN", "SCAT", "DTIM"] if "NAC" not in series.description else ["DECY"]
        )
        ds.CorrectedImage = corrected
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.CountsSource = "EMISSION"
        ds.ReconstructionMethod = "OSEM 3i21s"
        ds.SliceThickness = "3"
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = f"{rng.uniform(0.5, 4):.5f}"
        nuclide = Dataset()
        nuclide.CodeValue = "C-111A1"
        nuclide.CodingSchemeDesignator = "SRT"
        nuclide.CodeMeaning = "^18^Fluorine"
        radio = Dataset()
        radio.Radiopharmaceutical = "Fluorodeoxyglucose"
        radio.RadiopharmaceuticalStartTime = "080000"
        radio.RadionuclideTotalDose = str(rng.randint(250, 400) * 1_000_000)
        radio.RadionuclideHalfLife = "6586.2"
        radio.RadionuclidePositronFraction = "0.9673"
        radio.RadionuclideCodeSequence = DicomSequence([nuclide])
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([radio])
    elif series.modality == "MG":
        views = series.views or ("CC",)
        view = views[index % len(views)]
        laterality = series.laterality or (
            "R" if index < len(views) // 2 or len(views) == 1 else "L"
        )
        ds.ImageLaterality = laterality
        ds.ViewPosition = view
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.KVP = str(rng.randint(26, 32))
        ds.BodyPartThickness = str(rng.randint(35, 70))
        ds.CompressionForce = str(rng.randint(60, 140))
        ds.ExposureTime = rng.randint(800, 1600)
        ds.ImagerPixelSpacing = ["0.07", "0.07"]
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = -1
        ds.BreastImplantPresent = "NO"
        ds.WindowCenter = "2047"
        ds.WindowWidth = "4095"


def _instance(
    patient: Patient,
    study: Study,
    series: Series,
    index: int,
    sop_uid: str,
    frame_uid: str,
    rng: random.Random,
) -> bytes:
    sop_class = SOP_CLASSES.get(series.modality, CTImageStorage)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION

    series_time = _add_time(study.study_time, 120 * series.number)
    content_time = _add_time(series_time, 2 * index)
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = list(series.image_type)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = _da(study.study_date)
    ds.SeriesDate = _da(study.study_date)
    ds.AcquisitionDate = _da(study.study_date)
    ds.ContentDate = _da(study.study_date)
    ds.StudyTime = study.study_time
    ds.SeriesTime = series_time
    ds.AcquisitionTime = content_time
    ds.ContentTime = content_time
    ds.AccessionNumber = study.accession_number
    ds.Modality = series.modality
    ds.Manufacturer = series.manufacturer
    ds.InstitutionName = study.institution.name
    ds.InstitutionAddress = study.institution.address
    ds.ReferringPhysicianName = study.referring_physician
    ds.StationName = f"{study.institution.station_prefix}{series.modality}1"[:16]
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = series.model
    ds.DeviceSerialNumber = str(int(hashlib.sha256(series.model.encode()).hexdigest()[:6], 16))
    ds.SoftwareVersions = {"SIEMENS": "syngo VA40A"}.get(series.manufacturer, "R5.2.1")
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = _da(patient.birth_date)
    ds.PatientSex = patient.sex
    if patient.other_ids:
        ds.OtherPatientIDs = list(patient.other_ids)
    if study.with_patient_age:
        ds.PatientAge = _age_string(patient.birth_date, study.study_date)
    if patient.size_m is not None:
        ds.PatientSize = f"{patient.size_m:.2f}"
    if patient.weight_kg is not None:
        ds.PatientWeight = f"{patient.weight_kg:.0f}"
    if series.body_part:
        # quirks write non-conformant values (lower case) on purpose, as real archives hold them
        ds.add(DataElement(0x00180015, "CS", series.body_part, validation_mode=config.IGNORE))
    if series.protocol:
        ds.ProtocolName = series.protocol
    if series.modality != "MG":
        ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series.series_uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = series.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    if series.modality != "MG":
        z = -10 * index
        ds.ImagePositionPatient = ["-200", "-200", str(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = str(z)
        ds.PixelSpacing = ["50", "50"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = MATRIX
    ds.Columns = MATRIX
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    _modality_tags(ds, series, index, rng)
    for keyword, value in {**patient.extra, **study.extra, **series.extra}.items():
        setattr(ds, keyword, value)
    for keyword in study.omit | series.omit:
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = _pixels(rng, series.modality)

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_study(patient: Patient, study: Study, series: Sequence[Series]) -> list[bytes]:
    """Encode every instance of ``study`` (Part 10 files, explicit VR little endian)."""
    rng = random.Random(study.study_uid)  # noqa: S311 - test data, not security
    frame_uid = dicom_uid(study.study_uid, "frame-of-reference")
    files = []
    for one in series:
        for index, sop_uid in enumerate(one.sop_uids()):
            files.append(_instance(patient, study, one, index, sop_uid, frame_uid, rng))
    return files


# ---------------------------------------------------------------------------------------------
# Population


@dataclass(frozen=True)
class GeneratedStudy:
    patient: Patient
    study: Study
    series: tuple[Series, ...]
    truth: StudyTruth

    def instances(self) -> list[bytes]:
        """The encoded files (computed on each call; deterministic)."""
        return make_study(self.patient, self.study, self.series)


INSTITUTIONS = (
    Institution(
        "Hospital Universitari Vall d'Hebron",
        "Passeig de la Vall d'Hebron 119-129, 08035 Barcelona, ES",
        "VHIR",
        "VHEBRON-NHC",
        "VH",
    ),
    Institution(
        "Charité - Universitätsmedizin Berlin",
        "Charitéplatz 1, 10117 Berlin, DE",
        "CHAR",
        "CHARITE-PID",
        "CB",
    ),
    Institution(
        "Gustave Roussy",
        "114 rue Édouard-Vaillant, 94805 Villejuif, FR",
        "IGR",
        "IGR-IPP",
        "GR",
    ),
    Institution(
        "Fondazione IRCCS Istituto Nazionale dei Tumori",
        "Via Giacomo Venezian 1, 20133 Milano, IT",
        "INT",
        "INT-MI",
        "NT",
    ),
    Institution(
        "Netherlands Cancer Institute",
        "Plesmanlaan 121, 1066 CX Amsterdam, NL",
        "NKI",
        "NKI-AVL",
        "AV",
    ),
    Institution(
        "Karolinska Universitetssjukhuset",
        "Eugeniavägen 3, 171 64 Solna, SE",
        "KS",
        "KS-PNR",
        "KS",
    ),
)

FAMILY_NAMES = (
    "Müller",
    "García López",
    "Dubois",
    "Rossi",
    "van der Berg",
    "Lindqvist",
    "Nowak",
    "Papadopoulos",
    "O'Brien",
    "Schmidt",
    "Fernández",
    "Lefèvre",
    "Bianchi",
    "de Vries",
    "Johansson",
    "Kowalczyk",
    "Ferreira",
    "Novák",
    "Horváth",
    "Jensen",
    "Martin",
    "Weber",
)
GIVEN_NAMES = {
    "F": (
        "Anna",
        "María José",
        "Élodie",
        "Giulia",
        "Sanne",
        "Ingrid",
        "Zofia",
        "Eleni",
        "Siobhán",
        "Katrin",
        "Lucía",
        "Chloé",
        "Francesca",
        "Emma",
        "Marta",
    ),
    "M": (
        "Thomas",
        "José Luis",
        "Jean-Pierre",
        "Marco",
        "Pieter",
        "Erik",
        "Piotr",
        "Nikos",
        "Seán",
        "Jürgen",
        "Javier",
        "Olivier",
        "Luca",
        "Lars",
        "João",
    ),
}
PHYSICIANS = (
    "Schneider^Claudia^^Dr.",
    "Moreau^Philippe^^Dr.",
    "Conti^Alessandro^^Dr.",
    "Bakker^Jan^^Dr.",
    "Sánchez^Elena^^Dra.",
    "Andersson^Karin^^Dr.",
)
SCANNERS = {
    "CT": (
        ("SIEMENS", "SOMATOM Definition AS+"),
        ("SIEMENS", "SOMATOM Force"),
        ("GE MEDICAL SYSTEMS", "Revolution CT"),
        ("GE MEDICAL SYSTEMS", "LightSpeed VCT"),
        ("Philips", "IQon - Spectral CT"),
        ("TOSHIBA", "Aquilion ONE"),
    ),
    "MR": (
        ("SIEMENS", "MAGNETOM Skyra"),
        ("SIEMENS", "Prisma_fit"),
        ("GE MEDICAL SYSTEMS", "SIGNA Premier"),
        ("GE MEDICAL SYSTEMS", "DISCOVERY MR750w"),
        ("Philips Medical Systems", "Ingenia"),
        ("Philips Medical Systems", "Achieva"),
    ),
    "PT": (
        ("SIEMENS", "Biograph128_Vision 600 Edge"),
        ("GE MEDICAL SYSTEMS", "Discovery MI"),
        ("Philips Medical Systems", "Vereos PET/CT"),
    ),
    "MG": (
        ("HOLOGIC, Inc.", "Selenia Dimensions"),
        ("GE MEDICAL SYSTEMS", "Senographe Pristina"),
        ("FUJIFILM Corporation", "FDR-3000AWS"),
        ("SIEMENS", "Mammomat Revelation"),
    ),
}

# protocol: (study description, scanner family, [(series description, modality, body part,
#            (min, max) instances, image type)])
_Spec = tuple[str, str, str | None, tuple[int, int], tuple[str, ...]]
AXIAL = ("ORIGINAL", "PRIMARY", "AXIAL")
LOCALIZER = ("ORIGINAL", "PRIMARY", "LOCALIZER")
DERIVED = ("DERIVED", "SECONDARY", "AXIAL")
PROTOCOLS: dict[str, tuple[str, str, list[_Spec]]] = {
    "ct_thorax": (
        "CT THORAX WITH CONTRAST",
        "CT",
        [
            ("Topogram 0.6 T20f", "CT", "CHEST", (1, 1), LOCALIZER),
            ("Thorax 5.0 Br40 3", "CT", "CHEST", (3, 6), AXIAL),
            ("Lung 1.0 Bl57 3", "CT", "CHEST", (4, 8), AXIAL),
        ],
    ),
    "ct_abdomen_pelvis": (
        "CT ABDOMEN PELVIS WITH CONTRAST",
        "CT",
        [
            ("Scout", "CT", "ABDOMEN", (1, 2), LOCALIZER),
            ("Abdomen 5.0 Br40 PV", "CT", "ABDOMEN", (3, 6), AXIAL),
            ("Pelvis 5.0 Br40 PV", "CT", "PELVIS", (2, 5), AXIAL),
        ],
    ),
    "ct_liver": (
        "CT LIVER 3 PHASE",
        "CT",
        [
            ("Liver arterial 3.0", "CT", "LIVER", (3, 5), AXIAL),
            ("Liver portal venous 3.0", "CT", "LIVER", (3, 5), AXIAL),
            ("Liver delayed 5.0", "CT", "LIVER", (2, 4), AXIAL),
        ],
    ),
    "mr_prostate": (
        "MR PROSTATE MULTIPARAMETRIC",
        "MR",
        [
            ("t2_tse_tra", "MR", "PROSTATE", (3, 6), AXIAL),
            ("t2_tse_sag", "MR", "PROSTATE", (2, 4), ("ORIGINAL", "PRIMARY", "M", "ND")),
            ("ep2d_diff_b50_800_1400_tra", "MR", "PROSTATE", (3, 5), AXIAL),
            ("ep2d_diff_tra_ADC", "MR", "PROSTATE", (3, 5), ("DERIVED", "PRIMARY", "ADC")),
            ("t1_vibe_dyn_tra", "MR", "PROSTATE", (2, 4), AXIAL),
        ],
    ),
    "mr_breast": (
        "MR BREAST BILATERAL WITH AND WITHOUT CONTRAST",
        "MR",
        [
            ("t1_fl3d_tra_pre", "MR", "BREAST", (3, 5), AXIAL),
            ("t1_fl3d_tra_dyn", "MR", "BREAST", (3, 6), AXIAL),
            ("t1_fl3d_tra_SUB", "MR", "BREAST", (2, 4), DERIVED),
            ("t2_tse_tra", "MR", "BREAST", (2, 4), AXIAL),
        ],
    ),
    "mr_brain": (
        "MR BRAIN WITH AND WITHOUT CONTRAST",
        "MR",
        [
            ("t1_mprage_sag_3d", "MR", "BRAIN", (3, 6), ("ORIGINAL", "PRIMARY", "M", "ND")),
            ("t2_flair_tra", "MR", "BRAIN", (3, 5), AXIAL),
            ("ep2d_diff_tra", "MR", "BRAIN", (2, 4), AXIAL),
            ("t1_mprage_sag_3d_post", "MR", "BRAIN", (3, 6), ("ORIGINAL", "PRIMARY", "M", "ND")),
        ],
    ),
    "pet_ct": (
        "PET-CT FDG WHOLE BODY",
        "PT",
        [
            ("Topogram 0.6 T20f", "CT", "WHOLEBODY", (1, 1), LOCALIZER),
            ("CT WB 3.0 B30f", "CT", "WHOLEBODY", (3, 6), AXIAL),
            ("PET WB AC", "PT", "WHOLEBODY", (3, 6), AXIAL),
            ("PET WB NAC", "PT", "WHOLEBODY", (2, 4), AXIAL),
        ],
    ),
    "mg_screening": ("MAMMOGRAPHY SCREENING BILATERAL", "MG", []),  # series built per vendor
}
PROFILES: dict[str, tuple[tuple[float, float, float], tuple[int, int], list[str]]] = {
    # profile: ((share F, share M, share O), (min, max) age, protocols in follow-up order)
    "lung": ((0.45, 0.549, 0.001), (48, 84), ["ct_thorax", "pet_ct", "ct_thorax", "mr_brain"]),
    "breast": (
        (0.99, 0.01, 0.0),
        (38, 79),
        ["mg_screening", "mr_breast", "pet_ct", "mg_screening"],
    ),
    "prostate": ((0.0, 1.0, 0.0), (52, 82), ["mr_prostate", "ct_abdomen_pelvis", "mr_prostate"]),
    "colorectal": ((0.45, 0.55, 0.0), (45, 85), ["ct_abdomen_pelvis", "ct_liver", "pet_ct"]),
    "liver": ((0.3, 0.7, 0.0), (50, 80), ["ct_liver", "ct_liver", "ct_abdomen_pelvis"]),
    "brain": ((0.45, 0.55, 0.0), (30, 75), ["mr_brain", "mr_brain", "mr_brain"]),
}


def _mg_series(vendor: tuple[str, str]) -> list[tuple[_Spec, str | None, tuple[str, ...]]]:
    """Screening mammography: Hologic puts the four views in one series, other vendors one
    series per laterality (CC + MLO)."""
    image_type = ("ORIGINAL", "PRIMARY", "")
    if vendor[0].startswith("HOLOGIC"):
        return [
            (
                ("R CC, R MLO, L CC, L MLO", "MG", "BREAST", (4, 4), image_type),
                None,
                ("CC", "MLO", "CC", "MLO"),
            )
        ]
    return [
        (("R CC/MLO", "MG", "BREAST", (2, 2), image_type), "R", ("CC", "MLO")),
        (("L CC/MLO", "MG", "BREAST", (2, 2), image_type), "L", ("CC", "MLO")),
    ]


def _pick_sex(rng: random.Random, shares: tuple[float, float, float]) -> str:
    return rng.choices(("F", "M", "O"), weights=shares)[0]


def synthetic_population(
    n_patients: int,
    seed: int = 0,
    *,
    n_studies: int | None = None,
    max_instances: int | None = None,
    quirks: bool = False,
    start: date = date(2014, 1, 1),
    end: date = date(2024, 12, 31),
) -> list[GeneratedStudy]:
    """Draw ``n_patients`` cancer patients and their imaging studies.

    ``n_studies`` is the total number of studies (at least ``n_patients``; each patient gets
    one, the rest go to randomly chosen patients as follow-ups); without it each patient has 1-3
    studies. ``max_instances`` caps the instances per series (tests stay fast). ``quirks`` adds
    what real archives contain: series without BodyPartExamined, studies without PatientAge or
    ReferringPhysicianName, lower-case or vendor-specific body parts (``HEAD`` for a brain MR).
    The result is sorted by patient then study date and is identical for the same arguments.
    """
    if n_patients < 1:
        raise ValueError("n_patients must be >= 1")
    if n_studies is not None and n_studies < n_patients:
        raise ValueError("n_studies must be >= n_patients")
    rng = random.Random(f"catalogue-dicom-{seed}")  # noqa: S311 - test data, not security
    per_patient = [1] * n_patients
    if n_studies is None:
        per_patient = [rng.choice((1, 1, 2, 2, 3)) for _ in range(n_patients)]
    else:
        for _ in range(n_studies - n_patients):
            per_patient[rng.randrange(n_patients)] += 1

    result: list[GeneratedStudy] = []
    span = (end - start).days
    for p in range(n_patients):
        profile = rng.choice(sorted(PROFILES))
        shares, (min_age, max_age), protocols = PROFILES[profile]
        sex = _pick_sex(rng, shares)
        institution = rng.choice(INSTITUTIONS)
        first = start + timedelta(days=rng.randrange(max(span - 365 * 2, 1)))
        age = rng.randint(min_age, max_age)
        birth = first - timedelta(days=int(age * 365.25) + rng.randrange(365))
        given = rng.choice(GIVEN_NAMES["F" if sex == "F" else "M"])
        name = f"{rng.choice(FAMILY_NAMES)}^{given}"
        patient = Patient(
            patient_id=f"{institution.accession_prefix}{rng.randrange(10**7, 10**8)}",
            name=name,
            birth_date=birth,
            sex=sex,
            issuer=institution.issuer,
            weight_kg=rng.uniform(48, 110),
            size_m=rng.uniform(1.52, 1.95),
        )
        when = first
        for s in range(per_patient[p]):
            protocol = protocols[s % len(protocols)]
            result.append(
                _draw_study(
                    rng,
                    patient,
                    institution,
                    protocol,
                    profile,
                    when,
                    p,
                    s,
                    max_instances=max_instances,
                    quirks=quirks,
                    seed=seed,
                )
            )
            when = min(when + timedelta(days=rng.randint(60, 420)), end)
    result.sort(key=lambda g: (g.patient.patient_id, g.study.study_date, g.study.study_uid))
    return result


def _draw_study(
    rng: random.Random,
    patient: Patient,
    institution: Institution,
    protocol: str,
    profile: str,
    when: date,
    p: int,
    s: int,
    *,
    max_instances: int | None,
    quirks: bool,
    seed: int,
) -> GeneratedStudy:
    description, family, specs = PROTOCOLS[protocol]
    vendor = rng.choice(SCANNERS[family])
    study_uid = dicom_uid("catalogue-test-study", seed, p, s)
    laterality: list[tuple[str | None, tuple[str, ...]]] = [(None, ())] * len(specs)
    if protocol == "mg_screening":
        mg = _mg_series(vendor)
        specs = [spec for spec, _, _ in mg]
        laterality = [(side, views) for _, side, views in mg]
    series: list[Series] = []
    for number, ((desc, modality, body_part, (low, high), image_type), (side, views)) in enumerate(
        zip(specs, laterality, strict=True), start=1
    ):
        count = rng.randint(low, high)
        if max_instances is not None and modality != "MG":
            count = max(1, min(count, max_instances))
        manufacturer, model = vendor  # PET/CT: the CT series come from the same hybrid scanner
        part: str | None = body_part
        if body_part == "BRAIN" and manufacturer == "SIEMENS":
            part = "HEAD"
        if quirks:
            roll = rng.random()
            if roll < 0.12:
                part = None
            elif roll < 0.18 and part:
                part = part.capitalize()
        series.append(
            Series(
                series_uid=dicom_uid(study_uid, "series", number),
                number=number,
                modality=modality,
                description=desc,
                body_part=part,
                manufacturer=manufacturer,
                model=model,
                instances=count,
                protocol=description.title()[:64],
                image_type=image_type,
                laterality=side,
                views=views,
            )
        )
    study_time = f"{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"
    referring = rng.choice(PHYSICIANS)
    with_age = True
    if quirks and rng.random() < 0.2:
        with_age = False
    if quirks and rng.random() < 0.2:
        referring = ""
    study = Study(
        study_uid=study_uid,
        accession_number=f"{institution.accession_prefix}{when:%y}{rng.randrange(10**7):07d}",
        study_date=when,
        study_time=study_time,
        description=description,
        institution=institution,
        referring_physician=referring,
        study_id=str(rng.randint(1, 9999)),
        with_patient_age=with_age,
    )
    return GeneratedStudy(
        patient=patient,
        study=study,
        series=tuple(series),
        truth=study_truth(patient, study, series, profile=profile),
    )


def population_files(population: Iterable[GeneratedStudy]) -> Iterable[bytes]:
    """Every encoded instance of ``population``, study by study."""
    for generated in population:
        yield from generated.instances()
