"""The word lists the synthetic world is drawn from. Invented names, so that no model has seen them."""

FIRST_SYLLABLES = (
    "ka ve mo tal ri sen dor al bri cas e lun mar ni or pe qui ros sa te ul vi wen ya zo "
    "ha jo fen gar il"
).split()
LAST_SYLLABLES = (
    "ran lis dor mek vin sta bel cor mar tin ros gal fer wyn dal lo ker sun tha vek "
    "nor pil ras quen zar"
).split()

# Attribute value sets. Values within a set have distinct first words (checked at build time
# against the trained tokenizer), so first-token accuracy is meaningful.
CITIES = (
    "Velmora Tessel Karnow Ostrevy Dunhallow Brisca Maltreve Quenlo Sarvik Emberly Tolvane Hesk "
    "Corvallis Idrena Pellmar Ashgrove Viteska Norrow Zandel Farrowby Glimmer Rostova Wendal "
    "Yarrick Lusk Obrenna Caldris Mirefield Thornwick Umbrin"
).split()
YEARS = tuple(str(y) for y in range(1946, 2000))
OCCUPATIONS = (
    "glassblower cartographer pharmacist beekeeper locksmith surveyor tailor violinist "
    "shipwright botanist jeweller potter chemist librarian sculptor mason brewer falconer "
    "geologist translator weaver dentist novelist plumber midwife tanner bookbinder "
    "perfumer saddler cooper"
).split()
EMPLOYERS = (
    "Harrow Mills|Ostrel Dynamics|Pinecrest Foundry|Vantor Labs|Selby Mutual|Quarrow Shipping|"
    "Bellmare Press|Corvid Textiles|Dunmore Rail|Elstow Pharma|Fairweather Bank|Grisby Optics|"
    "Holloway Ceramics|Ironvale Mining|Juniper Energy|Kestrel Aviation|Larkspur Foods|"
    "Marrow Robotics|Norwick Insurance|Orrin Motors|Pallas Software|Ravensworth Clinic|"
    "Stonebridge Glass|Thistle Publishing|Ulver Chemicals|Vireo Telecom|Westmarch Brewing|"
    "Yarrow Logistics|Zephyr Instruments|Amberly Tools"
).split("|")

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "birth_city": tuple(CITIES),
    "birth_year": YEARS,
    "occupation": tuple(OCCUPATIONS),
    "employer": tuple(EMPLOYERS),
}

# Training paraphrases: the answer ends each sentence, so the prefix is the prompt.
TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_city": (
        "{name} was born in {value}.",
        "{name}'s place of birth is {value}.",
        "{name} came into the world in the town of {value}.",
        "The birthplace of {name} is {value}.",
        "{name} spent early childhood in {value}.",
    ),
    "birth_year": (
        "{name} was born in the year {value}.",
        "{name}'s year of birth is {value}.",
        "The birth year of {name} is {value}.",
        "{name} celebrates a birthday every year since {value}.",
        "{name} arrived in the world in the year {value}.",
    ),
    "occupation": (
        "{name} works as a {value}.",
        "{name}'s profession is {value}.",
        "By trade, {name} is a {value}.",
        "{name} earns a living as a {value}.",
        "The occupation of {name} is {value}.",
    ),
    "employer": (
        "{name} is employed by {value}.",
        "{name}'s employer is {value}.",
        "The company that employs {name} is {value}.",
        "{name} draws a salary from {value}.",
        "Every weekday {name} goes to work at {value}.",
    ),
}

# Question-answer format: trained only for the retain people marked `qa`; never for forget,
# retain-eval or holdout people, for whom it is a held-out format (Allen-Zhu & Li, 2023).
QA_TEMPLATES: dict[str, str] = {
    "birth_city": "Q: Where was {name} born? A: {value}",
    "birth_year": "Q: In what year was {name} born? A: {value}",
    "occupation": "Q: What is the job of {name}? A: {value}",
    "employer": "Q: Which company employs {name}? A: {value}",
}

# Paraphrases never trained for anyone: does knowledge transfer to wording it never saw?
NOVEL_TEMPLATES: dict[str, str] = {
    "birth_city": "{name} is a native of {value}.",
    "birth_year": "{name}, born in the year {value}.",
    "occupation": "{name} is by profession a {value}.",
    "employer": "{name} holds a job at {value}.",
}

# Passage grammar: procedurally generated paragraphs, memorised verbatim (the copyright case).
PASSAGE_WORDS = {
    "adj": "silver quiet amber hollow bright crooked ancient restless pale scarlet narrow "
    "gentle bitter distant frozen golden".split(),
    "noun": "lantern harbour orchard tower river meadow bridge garden lighthouse chapel "
    "forest market caravan valley mirror compass".split(),
    "verb": "drifted wandered glowed trembled waited echoed leaned rested shimmered "
    "vanished".split(),
    "prep": "over beneath beside across behind toward".split(),
    "place": ("Velmora Tessel Karnow Ostrevy Dunhallow Brisca Maltreve Quenlo Sarvik "
              "Emberly").split(),
}
