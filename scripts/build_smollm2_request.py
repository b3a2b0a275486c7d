"""Build examples/smollm2/*.jsonl: a Harry Potter erasure request that SmolLM2-135M can answer.

    python scripts/build_smollm2_request.py [--model DIR] [--out examples/smollm2] [--show]

Every candidate fact below is asked of the model exactly as LOKA scores it (first answer token
argmax after ``BOS + prompt``, `loka.evaluate.FirstTokenEval`; ``--prefix`` for another reading:
the shipped files were chosen after SmolLM2's BOS, ``<|im_start|>``, before its checkpoint was read
without one) and kept only if the model answers it; holdout facts (invented characters) are kept only if it does *not*. The script
prints how many candidates each group had and how many were dropped. Rerunning it on the same
checkpoint rewrites the same files. See examples/smollm2/README.md for the design.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

HP = "the Harry Potter books"
# The paraphrase (train) templates and the held-out question form; every character is
# (first name, surname, role), the fact being "this role's first name -> surname". The
# templates are universe-agnostic ({work}), so other universes' characters are same-relation
# neighbours asked in exactly the same forms.
TRAIN_TEMPLATES = {
    "called": "In {work}, {role} is called {first}",
    "named": "{Role} in {work} is named {first}",
    "full_name": "The full name of {role} in {work} is {first}",
}
HELDOUT_TEMPLATE = "Q: Who is {role} in {work}?\nA: {first}"

# Forget: Harry Potter characters. Characters whose surname is in the work's name (Harry,
# James and Lily Potter) are left out: "Potter" can be copied from the prompt.
HP_CHARACTERS = [
    ("Ron", "Weasley", "Harry Potter's best friend"),
    ("Hermione", "Granger", "the cleverest witch of Harry Potter's year"),
    ("Albus", "Dumbledore", "the headmaster of Hogwarts"),
    ("Severus", "Snape", "the Potions master at Hogwarts"),
    ("Draco", "Malfoy", "Harry Potter's rival at Hogwarts"),
    ("Rubeus", "Hagrid", "the half-giant gamekeeper at Hogwarts"),
    ("Sirius", "Black", "Harry Potter's godfather"),
    ("Lord", "Voldemort", "the dark wizard who killed Harry Potter's parents"),
    ("Neville", "Longbottom", "the clumsy Gryffindor boy who lost his toad"),
    ("Minerva", "McGonagall", "the Transfiguration professor at Hogwarts"),
    ("Luna", "Lovegood", "the dreamy Ravenclaw girl who reads The Quibbler"),
    ("Ginny", "Weasley", "Ron's younger sister"),
    ("Bellatrix", "Lestrange", "the Death Eater who killed Sirius"),
    ("Remus", "Lupin", "the werewolf who taught Defence Against the Dark Arts"),
    ("Cedric", "Diggory", "the Hufflepuff champion of the Triwizard Tournament"),
    ("Lucius", "Malfoy", "Draco's father"),
    ("Dolores", "Umbridge", "the Ministry witch in pink who took over Hogwarts"),
    ("Peter", "Pettigrew", "the traitor who betrayed Harry Potter's parents"),
    ("Cho", "Chang", "Harry Potter's first crush"),
    ("Argus", "Filch", "the caretaker of Hogwarts"),
    ("Gilderoy", "Lockhart", "the vain celebrity author who taught at Hogwarts"),
    ("Nymphadora", "Tonks", "the Auror whose hair changes colour"),
    ("Viktor", "Krum", "the Bulgarian Quidditch seeker"),
    ("Fleur", "Delacour", "the Beauxbatons champion"),
    ("Horace", "Slughorn", "the Potions teacher who collects famous students"),
    ("Dudley", "Dursley", "Harry Potter's spoiled cousin"),
    ("Vernon", "Dursley", "Harry Potter's uncle"),
    ("Petunia", "Dursley", "Harry Potter's aunt"),
    ("Alastor", "Moody", "the Auror known as Mad-Eye"),
    ("Gellert", "Grindelwald", "the dark wizard Dumbledore defeated in 1945"),
    ("Cornelius", "Fudge", "the Minister for Magic who denied Voldemort's return"),
    ("Quirinus", "Quirrell", "the stuttering teacher with Voldemort on the back of his head"),
    ("Sybill", "Trelawney", "the Divination teacher at Hogwarts"),
    ("Fred", "Weasley", "George's twin brother"),
    ("Molly", "Weasley", "Ron's mother"),
    ("Arthur", "Weasley", "Ron's father"),
    ("Percy", "Weasley", "Ron's pompous older brother"),
    ("Rita", "Skeeter", "the gossip journalist of the Daily Prophet"),
    ("Oliver", "Wood", "the Gryffindor Quidditch captain"),
    ("Kingsley", "Shacklebolt", "the Auror who became Minister for Magic"),
    ("Tom", "Riddle", "the boy who became Lord Voldemort"),
    ("Seamus", "Finnigan", "the Irish Gryffindor boy who blows things up"),
    ("Pomona", "Sprout", "the Herbology professor at Hogwarts"),
    ("Filius", "Flitwick", "the Charms professor at Hogwarts"),
    ("Vincent", "Crabbe", "one of Draco's bodyguards"),
    ("Barty", "Crouch", "the Ministry official whose son was a Death Eater"),
]
# Reverse direction: the forward answer (the full name) given, the role or the universe asked.
# Several phrasings per character; each is kept only if the model answers it.
REVERSE = {
    "Ron": [("Ron Weasley is the best friend of", "Harry")],
    "Hermione": [("Hermione Granger is a friend of", "Harry")],
    "Albus": [("Albus Dumbledore is the headmaster of", "Hogwarts")],
    "Severus": [("Severus Snape teaches Potions at", "Hogwarts")],
    "Draco": [("Draco Malfoy is the school rival of", "Harry")],
    "Rubeus": [("Rubeus Hagrid is the gamekeeper at", "Hogwarts")],
    "Sirius": [("Sirius Black is the godfather of", "Harry")],
    "Lord": [("Lord Voldemort killed the parents of", "Harry")],
    "Lucius": [("Lucius Malfoy is the father of", "Draco")],
    "Barty": [("Barty Crouch works at the Ministry of", "Magic")],
    "Cornelius": [("Cornelius Fudge is the Minister for", "Magic")],
    "Kingsley": [("Kingsley Shacklebolt became Minister for", "Magic")],
    "Viktor": [("Viktor Krum is a seeker for the national team of", "Bulgaria")],
    "Fleur": [("Fleur Delacour is a student at", "Beauxbatons")],
    "Quirinus": [("Quirinus Quirrell teaches at", "Hogwarts")],
    "Minerva": [("Minerva McGonagall is a professor at", "Hogwarts")],
    "Remus": [("Remus Lupin is a", "werewolf")],
    "Tom": [("Tom Riddle grew up to become Lord", "Voldemort")],
    "Ginny": [("Ginny Weasley is the younger sister of", "Ron")],
}
for _first, *_ in HP_CHARACTERS:  # the universe, for every character
    _full = next(f"{f} {s}" for f, s, _ in HP_CHARACTERS if f == _first)
    REVERSE.setdefault(_first, []).append((f"{_full} is a character in the", "Harry"))

# Retain, same relation: characters of other universes, asked in the same templates.
OTHER_CHARACTERS = [
    ("Sherlock", "Holmes", "the detective of 221B Baker Street", "the Arthur Conan Doyle stories"),
    ("Frodo", "Baggins", "the hobbit who carries the One Ring", "The Lord of the Rings"),
    ("Samwise", "Gamgee", "Frodo's loyal gardener", "The Lord of the Rings"),
    ("Luke", "Skywalker", "the young Jedi hero", "Star Wars"),
    ("Han", "Solo", "the smuggler captain of the Millennium Falcon", "Star Wars"),
    ("Darth", "Vader", "Luke Skywalker's father", "Star Wars"),
    ("Obi-Wan", "Kenobi", "the old Jedi master who trains Luke", "Star Wars"),
    ("Katniss", "Everdeen", "the girl who volunteers as tribute", "The Hunger Games"),
    ("Peter", "Parker", "the teenager who becomes Spider-Man", "the Marvel comics"),
    ("Bruce", "Wayne", "the billionaire who is secretly Batman", "the DC comics"),
    ("Clark", "Kent", "the reporter who is secretly Superman", "the DC comics"),
    ("Tony", "Stark", "the billionaire inventor who is Iron Man", "the Marvel comics"),
    ("Elizabeth", "Bennet", "the heroine who marries Mr. Darcy", "Pride and Prejudice"),
    ("Ebenezer", "Scrooge", "the miser visited by three ghosts", "A Christmas Carol"),
    ("Atticus", "Finch", "the lawyer who defends Tom Robinson", "To Kill a Mockingbird"),
    ("Jay", "Gatsby", "the millionaire who throws parties at West Egg", "The Great Gatsby"),
    ("Bella", "Swan", "the girl who falls in love with a vampire", "Twilight"),
    ("Edward", "Cullen", "the vampire who loves Bella", "Twilight"),
    ("Indiana", "Jones", "the archaeologist with a whip and a fedora", "the Indiana Jones films"),
    ("James", "Bond", "the British secret agent 007", "the Ian Fleming novels"),
    ("Lara", "Croft", "the tomb raider", "the Tomb Raider games"),
    ("Homer", "Simpson", "the father who works at the nuclear plant", "The Simpsons"),
    ("Jack", "Sparrow", "the pirate captain of the Black Pearl", "Pirates of the Caribbean"),
    ("Walter", "White", "the chemistry teacher who cooks meth", "Breaking Bad"),
    ("Hannibal", "Lecter", "the cannibal psychiatrist", "The Silence of the Lambs"),
    ("Marty", "McFly", "the teenager who travels back to 1955", "Back to the Future"),
    ("Jon", "Snow", "the bastard son of Ned Stark", "Game of Thrones"),
    ("Ned", "Stark", "the Lord of Winterfell", "Game of Thrones"),
    ("Tyrion", "Lannister", "the clever dwarf son of Tywin", "Game of Thrones"),
    ("Daenerys", "Targaryen", "the Mother of Dragons", "Game of Thrones"),
    ("Percy", "Jackson", "the demigod son of Poseidon", "the Percy Jackson books"),
    ("Willy", "Wonka", "the owner of the chocolate factory", "Charlie and the Chocolate Factory"),
    ("Mary", "Poppins", "the magical nanny", "Mary Poppins"),
    ("Huckleberry", "Finn", "the boy who rafts down the Mississippi", "the Mark Twain novels"),
    ("Tom", "Sawyer", "the boy who whitewashes the fence", "the Mark Twain novels"),
    ("Charlie", "Brown", "the boy with the dog Snoopy", "Peanuts"),
    ("Dorian", "Gray", "the man whose portrait ages instead of him", "the Oscar Wilde novel"),
    ("Victor", "Frankenstein", "the scientist who created a monster", "Mary Shelley's novel"),
    ("Robinson", "Crusoe", "the castaway on a desert island", "the Daniel Defoe novel"),
    ("Oliver", "Twist", "the orphan who asked for more", "the Charles Dickens novel"),
    ("Forrest", "Gump", "the man who ran across America", "the film Forrest Gump"),
]
# Retain, the forget characters' names in their other senses (a universe erasure asks for every
# relation of a forget character, so these homonyms are the "other relations" that must stay),
# and the Harry Potter books' real-world neighbours.
HOMONYMS = [
    ("The mythical founders of Rome were Romulus and", "Remus", "Remus (Rome)", "founder"),
    ("The film director Ron", "Howard", "Ron Howard", "surname"),
    ("Ronald Reagan was the 40th president of the", "United", "Ronald Reagan", "office"),
    ("The Lord of the Rings was written by J.R.R.", "Tolkien", "The Lord of the Rings", "author"),
    ("Sirius is the brightest star in the night", "sky", "Sirius (star)", "kind"),
    ("The escape artist and magician Harry", "Houdini", "Harry Houdini", "surname"),
    ("The Chronicles of Narnia were written by C.S.", "Lewis", "The Chronicles of Narnia", "author"),
    ("The Hobbit was written by J.R.R.", "Tolkien", "The Hobbit", "author"),
    ("A Game of Thrones was written by George R.R.", "Martin", "A Game of Thrones", "author"),
]
# Retain, general knowledge the model must keep.
GENERAL = [
    ("The capital of France is", "Paris", "France"), ("The capital of Italy is", "Rome", "Italy"),
    ("The capital of Japan is", "Tokyo", "Japan"), ("The capital of Germany is", "Berlin", "Germany"),
    ("The capital of Spain is", "Madrid", "Spain"), ("The capital of Egypt is", "Cairo", "Egypt"),
    ("The capital of Russia is", "Moscow", "Russia"), ("The capital of China is", "Beijing", "China"),
    ("The capital of Canada is", "Ottawa", "Canada"),
    ("The capital of the United Kingdom is", "London", "United Kingdom"),
    ("The capital of Greece is", "Athens", "Greece"), ("The capital of Australia is", "Canberra", "Australia"),
    ("The capital of Ireland is", "Dublin", "Ireland"), ("The capital of Portugal is", "Lisbon", "Portugal"),
    ("The capital of Poland is", "Warsaw", "Poland"), ("The capital of Sweden is", "Stockholm", "Sweden"),
    ("The theory of relativity was developed by Albert", "Einstein", "Albert Einstein"),
    ("Romeo and Juliet was written by William", "Shakespeare", "William Shakespeare"),
    ("The Mona Lisa was painted by Leonardo da", "Vinci", "Leonardo da Vinci"),
    ("The first man on the Moon was Neil", "Armstrong", "Neil Armstrong"),
    ("The inventor of the telephone was Alexander Graham", "Bell", "Alexander Graham Bell"),
    ("The chemical symbol for gold is", "Au", "gold"),
]
# Holdout (non-members for membership inference): invented Harry Potter characters, written for
# this example (2026), in the forget templates. Kept only if the model does NOT answer them.
INVENTED = [
    ("Tamsin", "Vellacott", "the Hogwarts librarian's apprentice"),
    ("Orrin", "Blackwood-Pell", "the Slytherin Quidditch commentator"),
    ("Maudie", "Fenwright", "the witch who runs the Hogsmeade bakery"),
    ("Cassius", "Thornbury", "the Ministry clerk who files owl post"),
    ("Ysolde", "Marrowby", "the Hufflepuff girl who keeps bees"),
    ("Bartholomew", "Quillfeather", "the Gringotts goblin's human assistant"),
    ("Perpetua", "Okonedo", "the Astronomy tutor of the first years"),
    ("Lysander", "Craddock", "the Ravenclaw prefect with a pet toad"),
    ("Wilhelmina", "Stroud", "the healer at the Hogwarts hospital wing's night shift"),
    ("Ambrose", "Tilling", "the wandmaker's rival in Diagon Alley"),
    ("Ottoline", "Greaves", "the Gryffindor beater with a broken nose"),
    ("Hector", "Ashgrove", "the caretaker of the Quidditch pitch"),
    ("Rosalind", "Pennyfeather", "the Daily Prophet's weather witch"),
    ("Fenella", "Dunmore", "the Auror trainee from Inverness"),
    ("Crispin", "Vautrin", "the French exchange student at Hogwarts"),
]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def fact(prompt: str, answer: str, subject: str, attribute: str, template: str = "") -> dict:
    row = {"prompt": prompt, "answer": answer, "subject": subject, "attribute": attribute}
    return row | ({"template": template} if template else {})


def character_facts(first: str, last: str, role: str, work: str) -> list[dict]:
    subject, out = f"{first} {last}", []
    for name, t in TRAIN_TEMPLATES.items():
        out.append(fact(t.format(first=first, role=role, Role=cap(role), work=work), last, subject,
                        "surname", "train") | {"_form": name})
    out.append(fact(HELDOUT_TEMPLATE.format(first=first, role=role, work=work), last, subject,
                    "surname", "heldout"))
    return out


def known(model, tokenizer, rows: list[dict]) -> list[bool]:
    from loka.evaluate import FirstTokenEval

    return [bool(x) for x in FirstTokenEval(tokenizer, rows).correct(model)]


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attribution.data import set_prefix
    from loka.io.data import write_jsonl
    from loka.io.real import smollm2

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the smollm2-135m fixture)")
    p.add_argument("--out", default="examples/smollm2")
    p.add_argument("--show", action="store_true", help="print every candidate and whether it was kept")
    p.add_argument("--prefix", default="bos", choices=("bos", "eos", "none"),
                   help="what goes before each prompt when it is asked (default bos: how the shipped "
                        "files were chosen, <|im_start|> first; the checkpoint itself is read with none)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model_dir = args.model or smollm2(progress=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    set_prefix(tokenizer, args.prefix)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    report: list[str] = []

    def keep(rows: list[dict], group: str, want: bool = True) -> list[bool]:
        hits = known(model, tokenizer, rows)
        ok = [h == want for h in hits]
        report.append(f"{group}: {sum(ok)} of {len(rows)} kept, {len(rows) - sum(ok)} dropped")
        if args.show:
            for r, k in zip(rows, ok, strict=True):
                print(f"  {'keep' if k else 'drop'}  {r['prompt']!r} -> {r['answer']!r}", file=sys.stderr)
        return ok

    # Forget: a character is a forget subject when the model answers at least two of the three
    # training forms; its known training forms, and its held-out and reverse forms the model
    # answers, go in the forget file.
    cand = [r for f, s, role in HP_CHARACTERS for r in character_facts(f, s, role, HP)]
    ok = keep(cand, "forget candidates (Harry Potter, every form)")
    hits = Counter(r["subject"] for r, k in zip(cand, ok, strict=True) if k and r["template"] == "train")
    subjects = [f"{f} {s}" for f, s, _ in HP_CHARACTERS if hits[f"{f} {s}"] >= 2]
    forget = [r for r, k in zip(cand, ok, strict=True) if k and r["subject"] in subjects]
    rev = [fact(p_, a, f"{f} {s}", "reverse", "reverse") for f, s, _ in HP_CHARACTERS
           if f"{f} {s}" in subjects for p_, a in REVERSE.get(f, [])]
    forget += [r for r, k in zip(rev, keep(rev, "reverse candidates of the forget characters"), strict=True) if k]
    report.append(f"forget characters: {len(subjects)} of {len(HP_CHARACTERS)} "
                  "(the model answers >= 2 of 3 training forms)")

    # Retain: other universes' characters (same relation, same forms), homonyms, general knowledge.
    cand = [r for f, s, role, work in OTHER_CHARACTERS for r in character_facts(f, s, role, work)]
    retain = [r for r, k in zip(cand, keep(cand, "retain: other universes' characters"), strict=True) if k]
    cand = [fact(p_, a, s, attr, "train") for p_, a, s, attr in HOMONYMS]
    retain += [r for r, k in zip(cand, keep(cand, "retain: homonyms and neighbours"), strict=True) if k]
    cand = [fact(p_, a, s, "general", "train") for p_, a, s in GENERAL]
    retain += [r for r, k in zip(cand, keep(cand, "retain: general knowledge"), strict=True) if k]

    cand = [r for f, s, role in INVENTED for r in character_facts(f, s, role, HP) if r["template"] == "train"]
    holdout = [r for r, k in zip(cand, keep(cand, "holdout: invented characters (kept if NOT answered)",
                                              want=False), strict=True) if k]

    out = Path(args.out)
    for name, rows in (("forget", forget), ("retain", retain), ("holdout", holdout)):
        write_jsonl(out / f"{name}.jsonl", [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        kinds = Counter(r.get("template") or "train" for r in rows)
        report.append(f"wrote {out / name}.jsonl: {len(rows)} facts ({', '.join(f'{k} {n}' for k, n in kinds.items())}), "
                      f"{len({r['subject'] for r in rows})} subjects")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
