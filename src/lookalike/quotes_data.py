"""Built-in quotes for the quote of the day: public domain, every author died before 1950.

Each entry: (text, author, year of death (negative: BC), where it comes from). Translations
are the common public-domain English renderings.
"""

from __future__ import annotations

BUILTIN_QUOTES: tuple[tuple[str, str, int, str], ...] = (
    (
        "The only thing we have to fear is fear itself.",
        "Franklin D. Roosevelt",
        1945,
        "First inaugural address, 1933",
    ),
    (
        "Be not afraid of greatness: some are born great, some achieve greatness, and some"
        " have greatness thrust upon 'em.",
        "William Shakespeare",
        1616,
        "Twelfth Night",
    ),
    (
        "We are such stuff as dreams are made on, and our little life is rounded with a sleep.",
        "William Shakespeare",
        1616,
        "The Tempest",
    ),
    ("Brevity is the soul of wit.", "William Shakespeare", 1616, "Hamlet"),
    ("The unexamined life is not worth living.", "Socrates", -399, "Plato, Apology"),
    (
        "Hope is the thing with feathers that perches in the soul.",
        "Emily Dickinson",
        1886,
        "poem 254",
    ),
    (
        "It is a truth universally acknowledged, that a single man in possession of a good"
        " fortune, must be in want of a wife.",
        "Jane Austen",
        1817,
        "Pride and Prejudice",
    ),
    (
        "It was the best of times, it was the worst of times.",
        "Charles Dickens",
        1870,
        "A Tale of Two Cities",
    ),
    (
        "All happy families are alike; each unhappy family is unhappy in its own way.",
        "Leo Tolstoy",
        1910,
        "Anna Karenina",
    ),
    (
        "We are all in the gutter, but some of us are looking at the stars.",
        "Oscar Wilde",
        1900,
        "Lady Windermere's Fan",
    ),
    (
        "The only way to get rid of a temptation is to yield to it.",
        "Oscar Wilde",
        1900,
        "The Picture of Dorian Gray",
    ),
    (
        "What does not kill me makes me stronger.",
        "Friedrich Nietzsche",
        1900,
        "Twilight of the Idols",
    ),
    (
        "If I have seen further it is by standing on the shoulders of Giants.",
        "Isaac Newton",
        1727,
        "letter to Robert Hooke, 1675",
    ),
    ("To err is human, to forgive divine.", "Alexander Pope", 1744, "An Essay on Criticism"),
    ("Hope springs eternal in the human breast.", "Alexander Pope", 1744, "An Essay on Man"),
    ("The pen is mightier than the sword.", "Edward Bulwer-Lytton", 1873, "Richelieu"),
    (
        "I am the master of my fate, I am the captain of my soul.",
        "William Ernest Henley",
        1903,
        "Invictus",
    ),
    (
        "All that we see or seem is but a dream within a dream.",
        "Edgar Allan Poe",
        1849,
        "A Dream Within a Dream",
    ),
    ("Well done is better than well said.", "Benjamin Franklin", 1790, "Poor Richard's Almanack"),
    ("Lost time is never found again.", "Benjamin Franklin", 1790, "Poor Richard's Almanack"),
    (
        "Courage is resistance to fear, mastery of fear, not absence of fear.",
        "Mark Twain",
        1910,
        "Pudd'nhead Wilson",
    ),
    (
        "The mind is its own place, and in itself can make a heaven of hell, a hell of heaven.",
        "John Milton",
        1674,
        "Paradise Lost",
    ),
    (
        "It is not possible to step twice into the same river.",
        "Heraclitus",
        -475,
        "fragment, quoted in Plato's Cratylus",
    ),
    (
        "It is not that we have a short time to live, but that we waste a lot of it.",
        "Seneca",
        65,
        "On the Shortness of Life",
    ),
    (
        "We suffer more often in imagination than in reality.",
        "Seneca",
        65,
        "Letters to Lucilius, 13",
    ),
    (
        "Waste no more time arguing about what a good man should be. Be one.",
        "Marcus Aurelius",
        180,
        "Meditations, book 10",
    ),
    (
        "A foolish consistency is the hobgoblin of little minds.",
        "Ralph Waldo Emerson",
        1882,
        "Self-Reliance",
    ),
    (
        "Trust thyself: every heart vibrates to that iron string.",
        "Ralph Waldo Emerson",
        1882,
        "Self-Reliance",
    ),
    (
        "The mass of men lead lives of quiet desperation.",
        "Henry David Thoreau",
        1862,
        "Walden",
    ),
    (
        "Far and away the best prize that life offers is the chance to work hard at work"
        " worth doing.",
        "Theodore Roosevelt",
        1919,
        "Labor Day address, 1903",
    ),
    (
        "'Tis better to have loved and lost than never to have loved at all.",
        "Alfred Tennyson",
        1892,
        "In Memoriam A.H.H.",
    ),
    ("A thing of beauty is a joy for ever.", "John Keats", 1821, "Endymion"),
    (
        "Man is born free, and everywhere he is in chains.",
        "Jean-Jacques Rousseau",
        1778,
        "The Social Contract",
    ),
    (
        "Whatever is worth doing at all, is worth doing well.",
        "Lord Chesterfield",
        1773,
        "Letters to His Son, 1746",
    ),
)
