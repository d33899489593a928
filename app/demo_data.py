"""The made-up people and sessions of the demo programme (app/demo.py): names, pronouns and
how to say them, access notes, and each session's title and agenda."""

from __future__ import annotations

# (first name, pronouns they share, how to say it where people often ask)
FIRST_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Amara", "she/her", "ah-MAH-rah"),
    ("Oliver", "he/him", ""),
    ("Siobhan", "she/her", "shiv-AWN"),
    ("Kwame", "he/him", "KWAH-may"),
    ("Priya", "she/her", ""),
    ("Tomasz", "he/him", "TOH-mash"),
    ("Aoife", "she/her", "EE-fa"),
    ("Jordan", "they/them", ""),
    ("Fatima", "she/her", ""),
    ("Rhys", "he/him", "REES"),
    ("Mei", "she/her", "MAY"),
    ("Callum", "he/him", ""),
    ("Niamh", "she/her", "NEEV"),
    ("Oluwaseun", "he/him", "oh-loo-wah-SHAY-oon"),
    ("Zainab", "she/her", ""),
    ("Hamish", "he/him", ""),
    ("Siân", "she/her", "SHAHN"),
    ("Ravi", "he/him", ""),
    ("Alex", "they/them", ""),
    ("Chidinma", "she/her", "chee-DEEN-mah"),
    ("Ewan", "he/him", ""),
    ("Grace", "she/her", ""),
    ("Mohammed", "he/him", ""),
    ("Leah", "she/her", ""),
    ("Dafydd", "he/him", "DAV-ith"),
    ("Ayesha", "she/her", ""),
    ("Sam", "they/them", ""),
    ("Bronwen", "she/her", ""),
    ("Tariq", "he/him", ""),
    ("Ingrid", "she/her", ""),
    ("Kofi", "he/him", ""),
    ("Saoirse", "she/her", "SEER-sha"),
    ("Jamal", "he/him", ""),
    ("Eleanor", "she/her", ""),
    ("Wei", "he/him", "WAY"),
    ("Zoë", "she/her", ""),
    ("Declan", "he/him", ""),
    ("Harpreet", "she/her", ""),
    ("Robin", "they/them", ""),
    ("Nkechi", "she/her", "n-KETCH-ee"),
)
LAST_NAMES: tuple[str, ...] = (
    "Okafor", "Smith", "Patel", "O'Neill", "Kowalski", "Begum", "Jones", "Nguyen",
    "Campbell", "Mensah", "Ahmed", "Evans", "Chen", "MacLeod", "Adeyemi", "Kaur",
    "Hughes", "Hussain", "Murphy", "Taylor", "Osei", "Rahman", "Williams", "Singh",
    "Davies", "Wright", "Bello", "Khan", "Fraser", "Li", "Thomas", "Nowak",
    "Robinson", "Ali", "Doyle", "Edwards", "Mahmood", "Clarke", "Boateng", "Walsh",
    "Reid",
)  # fmt: skip
FACILITATOR_NAMES: tuple[tuple[str, str], ...] = (
    ("Adaeze Nwosu", "she/her"),
    ("Gareth Price", "he/him"),
    ("Nadia Karim", "she/her"),
    ("Lewis Anderson", "he/him"),
    ("Yasmin Chowdhury", "she/her"),
    ("Marcus Johnson", "he/him"),
    ("Ceri Morgan", "they/them"),
    ("Anjali Mehta", "she/her"),
    ("Fergus Stewart", "he/him"),
    ("Abena Asante", "she/her"),
)
HOST_NAME = ("Harriet Lindqvist", "she/her")
SUPPORT_NAME = ("Dev Sharma", "he/him")
# The British Sign Language interpreter of the first session, pinned on its stage.
INTERPRETER_NAME = ("Bethan Rowlands", "she/her")
ACCESS_NOTES: tuple[str, ...] = (
    "I lip-read, so please face the camera when you speak.",
    "I may step away for short breaks; I will catch up from the notes.",
    "I use a screen reader: please send papers as Word documents, not scans.",
    "A British Sign Language interpreter will join the sessions with me.",
    "I sometimes need a little longer to gather my thoughts before I answer.",
)

SESSIONS: tuple[tuple[str, int, str], ...] = (
    # (title, weeks after the first session, agenda)
    (
        "Welcome, and what brings us here",
        0,
        "14:00 Welcome and how we will work together\n"
        "14:20 In your groups: introductions and hopes for the programme\n"
        "15:10 Back together: what we heard\n"
        "15:40 Pre-reading for next time, and close",
    ),
    (
        "Power, privilege and voice",
        1,
        "14:00 Check-in\n"
        "14:15 Short talk: whose voices get heard at work?\n"
        "14:35 In your groups: a time you were, or were not, heard\n"
        "15:25 Back together: patterns across the groups\n"
        "15:50 Close",
    ),
    (
        "Listening across difference",
        2,
        "14:00 Check-in\n"
        "14:10 Practice in pairs and trios: listening without fixing\n"
        "15:00 In your groups: what made listening hard or easy\n"
        "15:40 Back together, and close",
    ),
    (
        "From insight to action",
        4,
        "14:00 Check-in after the reflection week\n"
        "14:15 The themes so far, from all ten groups\n"
        "14:35 In your groups: one change each of us will try\n"
        "15:30 Back together: commitments\n"
        "15:50 Close",
    ),
    (
        "Sharing what we found",
        5,
        "14:00 Welcome\n"
        "14:10 Each group shares its poster and findings\n"
        "15:20 What happens next with what we found\n"
        "15:45 Thanks and close",
    ),
)
