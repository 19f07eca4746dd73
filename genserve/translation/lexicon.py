"""The bilingual English-French lexicon of the demo corpus.

Compact tables, parsed once. Nouns: ``english|english plural|french|french plural|gender``
(an empty plural means the regular one). Adjectives: ``english|m|f|m plural|f plural``
(empty = regular). Verbs: English ``base|3sg|past`` and French infinitive, present
(je, il, nous, vous, ils), past participle and auxiliary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Noun:
    en: str
    en_pl: str
    fr: str
    fr_pl: str
    gender: str  # "m" or "f"
    kind: str


@dataclass(frozen=True)
class Adjective:
    en: str
    m: str
    f: str
    mpl: str
    fpl: str
    kind: str  # opinion, size, age, colour, quality: English order and French position
    pre: bool  # French: before the noun
    m_vowel: str = ""  # masculine before a vowel (vieil, bel, nouvel)

    def form(self, gender: str, plural: bool) -> str:
        if plural:
            return self.fpl if gender == "f" else self.mpl
        return self.f if gender == "f" else self.m


@dataclass(frozen=True)
class Verb:
    en: str
    en_3sg: str
    en_past: str
    fr: tuple[str, str, str, str, str]  # je, il, nous, vous, ils
    fr_pp: str
    aux: str  # "avoir" or "être"
    objects: tuple[str, ...]  # noun kinds it takes as object; () = intransitive
    fr_prep: str = ""  # intransitive motion verbs: "à" or "dans"
    en_prep: str = ""


def _plural_fr(word: str) -> str:
    if word.endswith(("s", "x", "z")):
        return word
    if word.endswith(("eau", "au", "eu")) and word not in {"bleu", "pneu", "landau"}:
        return word + "x"
    if word.endswith("al") and word not in {"festival", "carnaval"}:
        return word[:-2] + "aux"
    return word + "s"


def _plural_en(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


_NOUNS = {
    "animal": """
cat||chat||m;dog||chien||m;horse||cheval||m;cow||vache||f;bird||oiseau||m;mouse|mice|souris||f;
rabbit||lapin||m;fox||renard||m;wolf|wolves|loup||m;bear||ours||m;goat||chèvre||f;
sheep|sheep|mouton||m;pig||cochon||m;duck||canard||m;hen||poule||f;lion||lion||m;tiger||tigre||m;
elephant||éléphant||m;monkey||singe||m;snake||serpent||m;turtle||tortue||f;frog||grenouille||f;
owl||chouette||f;deer|deer|cerf||m;donkey||âne||m;squirrel||écureuil||m;giraffe||girafe||f;
zebra||zèbre||m;camel||chameau||m;goose|geese|oie||f;animal||animal||m;kitten||chaton||m;
puppy||chiot||m;lamb||agneau||m;ox|oxen|bœuf||m;fish|fish|poisson||m;salmon|salmon|saumon||m;
bison|bison|bison||m;hamster||hamster||m;hedgehog||hérisson||m;heron||héron||m""",
    "place": """
street||rue||f;road||route||f;river||rivière||f;bridge||pont||m;field||champ||m;forest||forêt||f;
desert||désert||m;lake||lac||m;valley||vallée||f;square||place||f;park||parc||m;highway||autoroute||f;
path||chemin||m;stream||ruisseau||m;canal||canal||m;avenue||avenue||f;meadow||prairie||f;
swamp||marais||m;ditch||fossé||m;track||piste||f""",
    "building": """
garden||jardin||m;yard||cour||f;beach||plage||f;city|cities|ville||f;village||village||m;
market||marché||m;station||gare||f;school||école||f;church||église||f;hospital||hôpital||m;
kitchen||cuisine||f;house||maison||f;room||chambre||f;office||bureau||m;library|libraries|bibliothèque||f;
museum||musée||m;airport||aéroport||m;farm||ferme||f;island||île||f;shop||magasin||m;
restaurant||restaurant||m;theatre||théâtre||m;hotel||hôtel||m;bakery|bakeries|boulangerie||f;
castle||château||m;garage||garage||m;cellar||cave||f;hangar||hangar||m;hall||hall||m""",
    "object": """
book||livre||m;table||table||f;chair||chaise||f;lamp||lampe||f;clock||horloge||f;
watch||montre||f;phone||téléphone||m;computer||ordinateur||m;pen||stylo||m;pencil||crayon||m;
letter||lettre||f;newspaper||journal||m;picture||tableau||m;ball||ballon||m;toy||jouet||m;
hat||chapeau||m;shirt||chemise||f;coat||manteau||m;dress||robe||f;shoe||chaussure||f;
umbrella||parapluie||m;guitar||guitare||f;piano||piano||m;key||clé||f;mirror||miroir||m;
map||carte||f;ticket||billet||m;ring||bague||f;necklace||collier||m;candle||bougie||f;
blanket||couverture||f;pillow||oreiller||m;towel||serviette||f;brush||brosse||f;vase||vase||m;
statue||statue||f;trophy|trophies|trophée||m;rope||corde||f;ladder||échelle||f;tent||tente||f;
bottle||bouteille||f;cup||tasse||f;glass||verre||m;plate||assiette||f;knife|knives|couteau||m;
spoon||cuillère||f;fork||fourchette||f;door||porte||f;window||fenêtre||f;bed||lit||m;
sofa||canapé||m;envelope||enveloppe||f;camera||caméra||f;radio||radio||f;painting||peinture||f;
axe||hache||f;harp||harpe||f;hammock||hamac||m""",
    "container": """
suitcase||valise||f;box||boîte||f;bag||sac||m;drawer||tiroir||m;cupboard||placard||m;
trunk||coffre||m;basket||panier||m;bucket||seau||m;jar||bocal||m;backpack||cartable||m;
wardrobe||armoire||f;crate||caisse||f""",
    "vehicle": """
car||voiture||f;bicycle||vélo||m;boat||bateau||m;train||train||m;bus|buses|bus||m;
truck||camion||m;plane||avion||m;taxi||taxi||m;motorbike||moto||f""",
    "food": """
apple||pomme||f;bread|bread|pain||m;cheese||fromage||m;egg||œuf||m;fish|fish|poisson||m;
soup||soupe||f;orange||orange||f;banana||banane||f;cake||gâteau||m;pear||poire||f;
tomato|tomatoes|tomate||f;carrot||carotte||f;salad||salade||f;sandwich||sandwich||m;
cookie||biscuit||m;chicken||poulet||m;strawberry|strawberries|fraise||f;lemon||citron||m;
pie||tarte||f;pizza||pizza||f;cherry|cherries|cerise||f;onion||oignon||m;bean||haricot||m;
lobster||homard||m;herring||hareng||m""",
    "drink": """
milk|milk|lait||m;water|water|eau||f;coffee|coffee|café||m;tea|tea|thé||m;juice|juice|jus||m;
wine|wine|vin||m;lemonade|lemonade|limonade||f""",
    "person": """
boy||garçon||m;girl||fille||f;man|men|homme||m;woman|women|femme||f;king||roi||m;
queen||reine||f;brother||frère||m;sister||sœur||f;father||père||m;mother||mère||f;
uncle||oncle||m;aunt||tante||f;baby|babies|bébé||m;child|children|enfant||m;
grandfather||grand-père|grands-pères|m;grandmother||grand-mère|grands-mères|f;
prince||prince||m;princess|princesses|princesse||f;neighbour||voisin||m;friend||ami||m;
tourist||touriste||m;customer||client||m;visitor||visiteur||m;hero|heroes|héros|héros|m""",
}

# Professions: english|french m|french f (plural regular).
_PROFESSIONS = """
student|étudiant|étudiante;teacher|professeur|professeure;doctor|médecin|médecin;
nurse|infirmier|infirmière;lawyer|avocat|avocate;engineer|ingénieur|ingénieure;
singer|chanteur|chanteuse;dancer|danseur|danseuse;writer|écrivain|écrivaine;
painter|peintre|peintre;cook|cuisinier|cuisinière;baker|boulanger|boulangère;
farmer|fermier|fermière;driver|chauffeur|chauffeuse;musician|musicien|musicienne;
pilot|pilote|pilote;journalist|journaliste|journaliste;scientist|scientifique|scientifique;
waiter|serveur|serveuse;gardener|jardinier|jardinière;librarian|bibliothécaire|bibliothécaire;
poet|poète|poétesse;programmer|programmeur|programmeuse;mechanic|mécanicien|mécanicienne;
carpenter|charpentier|charpentière;artist|artiste|artiste;athlete|athlète|athlète;
photographer|photographe|photographe;architect|architecte|architecte;dentist|dentiste|dentiste"""

# english|m|f|mpl|fpl|kind|pre(1/0)|m before vowel
_ADJECTIVES = """
beautiful|beau|belle|beaux||opinion|1|bel;pretty|joli|||opinion|1;good|bon|bonne|||opinion|1;
bad|mauvais||mauvais||opinion|1;nice|gentil|gentille|||opinion|0;lovely|charmant|||opinion|0;
small|petit|||size|1;big|gros|grosse|gros||size|1;large|grand|||size|1;tall|grand|||size|1;
little|petit|||size|1;long|long|longue|||size|1;short|court|||size|0;huge|énorme|||size|0;
tiny|minuscule|||size|0;old|vieux|vieille|vieux||age|1|vieil;young|jeune|||age|1;
new|nouveau|nouvelle|nouveaux||age|1|nouvel;ancient|ancien|ancienne|||age|0;modern|moderne|||age|0;
round|rond|||shape|0;square|carré|||shape|0;flat|plat|||shape|0;
black|noir|||colour|0;white|blanc|blanche|||colour|0;red|rouge|||colour|0;blue|bleu|||colour|0;
green|vert|||colour|0;yellow|jaune|||colour|0;grey|gris||gris||colour|0;brown|brun|||colour|0;
pink|rose|||colour|0;purple|violet|violette|||colour|0;golden|doré|||colour|0;
heavy|lourd|||quality|0;light|léger|légère|||quality|0;fast|rapide|||quality|0;slow|lent|||quality|0;
happy|heureux|heureuse|heureux||quality|0;sad|triste|||quality|0;tired|fatigué|||quality|0;
hungry|affamé|||quality|0;sick|malade|||quality|0;strong|fort|||quality|0;weak|faible|||quality|0;
brave|courageux|courageuse|courageux||quality|0;lazy|paresseux|paresseuse|paresseux||quality|0;
clever|intelligent|||quality|0;rich|riche|||quality|0;poor|pauvre|||quality|0;
famous|célèbre|||quality|0;quiet|calme|||quality|0;noisy|bruyant|||quality|0;clean|propre|||quality|0;
dirty|sale|||quality|0;empty|vide|||quality|0;full|plein|||quality|0;hot|chaud|||quality|0;
cold|froid|||quality|0;wet|mouillé|||quality|0;dry|sec|sèche|||quality|0;soft|doux|douce|doux||quality|0;
hard|dur|||quality|0;expensive|cher|chère|||quality|0;wide|large|||quality|0;narrow|étroit|||quality|0;
deep|profond|||quality|0;dangerous|dangereux|dangereuse|dangereux||quality|0;busy|animé|||quality|0;
icy|glacé|||quality|0;crowded|bondé|||quality|0;steep|raide|||quality|0;dark|sombre|||quality|0;
scared|effrayé|||quality|0;sweet|sucré|||quality|0;fresh|frais|fraîche|frais||quality|0;
delicious|délicieux|délicieuse|délicieux||quality|0;broken|cassé|||quality|0;fragile|fragile|||quality|0;
curious|curieux|curieuse|curieux||quality|0;angry|fâché|||quality|0;calm|tranquille|||quality|0;
sleepy|endormi|||quality|0;proud|fier|fière|||quality|0"""

# Regular French -er verbs: english base|3sg|past|french infinitive|object kinds
_ER_VERBS = """
like|likes|liked|aimer|animal,food,object,vehicle,person,drink;
watch|watches|watched|regarder|animal,object,vehicle,person;
find|finds|found|trouver|animal,object,container,vehicle,person;
carry|carries|carried|porter|animal,object,container,food;
close|closes|closed|fermer|container;
wash|washes|washed|laver|animal,object,container,vehicle;
draw|draws|drew|dessiner|animal,object,vehicle,person,building;
cook|cooks|cooked|cuisiner|food;
push|pushes|pushed|pousser|object,container,vehicle;
pull|pulls|pulled|tirer|object,container,vehicle;
catch|catches|caught|attraper|animal,object;
help|helps|helped|aider|animal,person;
visit|visits|visited|visiter|building,place,person;
forget|forgets|forgot|oublier|object,container,food;
break|breaks|broke|casser|object,container;
repair|repairs|repaired|réparer|object,container,vehicle;
bring|brings|brought|apporter|object,container,food,drink;
hide|hides|hid|cacher|animal,object,container,food;
touch|touches|touched|toucher|animal,object,vehicle;
keep|keeps|kept|garder|animal,object,container,food;
show|shows|showed|montrer|animal,object,vehicle,building;
use|uses|used|utiliser|object,container,vehicle;
look for|looks for|looked for|chercher|animal,object,container,vehicle,person,building;
meet|meets|met|rencontrer|person;
count|counts|counted|compter|animal,object,container;
order|orders|ordered|commander|food,drink;
borrow|borrows|borrowed|emprunter|object,vehicle,container;
steal|steals|stole|voler|object,vehicle,food,container;
check|checks|checked|vérifier|object,container,vehicle;
love|loves|loved|adorer|animal,food,object,person,drink;
feed|feeds|fed|nourrir|animal,person;
kick|kicks|kicked|frapper|object;
photograph|photographs|photographed|photographier|animal,building,vehicle,person,place;
taste|tastes|tasted|goûter|food,drink;
rent|rents|rented|louer|vehicle,building;
drop|drops|dropped|laisser tomber|object,container,food;
study|studies|studied|étudier|animal,object,building"""

# Irregular and other verbs: en base|3sg|past|je|il|nous|vous|ils|pp|aux|objects|fr prep|en prep
_IRREGULAR_VERBS = """
see|sees|saw|vois|voit|voyons|voyez|voient|vu|avoir|animal,object,container,vehicle,person,building,place;
eat|eats|ate|mange|mange|mangeons|mangez|mangent|mangé|avoir|food;
drink|drinks|drank|bois|boit|buvons|buvez|boivent|bu|avoir|drink;
read|reads|read|lis|lit|lisons|lisez|lisent|lu|avoir|text;
write|writes|wrote|écris|écrit|écrivons|écrivez|écrivent|écrit|avoir|text;
take|takes|took|prends|prend|prenons|prenez|prennent|pris|avoir|object,container,food,vehicle;
make|makes|made|fais|fait|faisons|faites|font|fait|avoir|food;
want|wants|wanted|veux|veut|voulons|voulez|veulent|voulu|avoir|animal,object,food,vehicle,drink;
open|opens|opened|ouvre|ouvre|ouvrons|ouvrez|ouvrent|ouvert|avoir|container;
buy|buys|bought|achète|achète|achetons|achetez|achètent|acheté|avoir|food,object,vehicle,animal,drink;
sell|sells|sold|vends|vend|vendons|vendez|vendent|vendu|avoir|food,object,vehicle,animal;
build|builds|built|construis|construit|construisons|construisez|construisent|construit|avoir|building,vehicle;
lose|loses|lost|perds|perd|perdons|perdez|perdent|perdu|avoir|object,container;
hear|hears|heard|entends|entend|entendons|entendez|entendent|entendu|avoir|animal,person,vehicle;
wait for|waits for|waited for|attends|attend|attendons|attendez|attendent|attendu|avoir|person,vehicle;
choose|chooses|chose|choisis|choisit|choisissons|choisissez|choisissent|choisi|avoir|object,food,vehicle,animal;
fill|fills|filled|remplis|remplit|remplissons|remplissez|remplissent|rempli|avoir|container;
follow|follows|followed|suis|suit|suivons|suivez|suivent|suivi|avoir|animal,person,vehicle;
know|knows|knew|connais|connaît|connaissons|connaissez|connaissent|connu|avoir|person,place,building;
clean|cleans|cleaned|nettoie|nettoie|nettoyons|nettoyez|nettoient|nettoyé|avoir|object,container,vehicle,building;
throw|throws|threw|lance|lance|lançons|lancez|lancent|lancé|avoir|object;
move|moves|moved|déplace|déplace|déplaçons|déplacez|déplacent|déplacé|avoir|object,container;
call|calls|called|appelle|appelle|appelons|appelez|appellent|appelé|avoir|animal,person;
prefer|prefers|preferred|préfère|préfère|préférons|préférez|préfèrent|préféré|avoir|food,drink,object,vehicle;
describe|describes|described|décris|décrit|décrivons|décrivez|décrivent|décrit|avoir|animal,object,building,place,person;
go|goes|went|vais|va|allons|allez|vont|allé|être||à|to;
come|comes|came|viens|vient|venons|venez|viennent|venu|être||à|to;
arrive|arrives|arrived|arrive|arrive|arrivons|arrivez|arrivent|arrivé|être||à|at;
fall|falls|fell|tombe|tombe|tombons|tombez|tombent|tombé|être||dans|into;
stay|stays|stayed|reste|reste|restons|restez|restent|resté|être||dans|in;
enter|enters|entered|entre|entre|entrons|entrez|entrent|entré|être||dans|;
paint|paints|painted|peins|peint|peignons|peignez|peignent|peint|avoir|object,vehicle,building;
sleep|sleeps|slept|dors|dort|dormons|dormez|dorment|dormi|avoir|;
play|plays|played|joue|joue|jouons|jouez|jouent|joué|avoir|;
run|runs|ran|cours|court|courons|courez|courent|couru|avoir|;
sing|sings|sang|chante|chante|chantons|chantez|chantent|chanté|avoir|;
dance|dances|danced|danse|danse|dansons|dansez|dansent|dansé|avoir|;
work|works|worked|travaille|travaille|travaillons|travaillez|travaillent|travaillé|avoir|;
swim|swims|swam|nage|nage|nageons|nagez|nagent|nagé|avoir|;
wait|waits|waited|attends|attend|attendons|attendez|attendent|attendu|avoir|"""


def _nouns() -> list[Noun]:
    out = []
    for kind, table in _NOUNS.items():
        for entry in table.replace("\n", "").split(";"):
            en, en_pl, fr, fr_pl, gender = entry.split("|")
            out.append(Noun(en, en_pl or _plural_en(en), fr, fr_pl or _plural_fr(fr), gender, kind))
    return out


def _professions() -> list[tuple[str, str, str]]:
    return [
        tuple(e.split("|"))  # type: ignore[misc]
        for e in _PROFESSIONS.replace("\n", "").split(";")
    ]


def _adjectives() -> list[Adjective]:
    kinds = ("opinion", "size", "age", "shape", "colour", "quality")
    out = []
    for entry in _ADJECTIVES.replace("\n", "").split(";"):
        fields = entry.split("|")
        k = next(i for i in range(2, len(fields)) if fields[i] in kinds)
        m, f, mpl, fpl = ([*fields[1:k], "", "", ""])[:4]
        f = f or (m if m.endswith("e") else m + "e")
        rest = [*fields[k + 1 :], ""]
        out.append(
            Adjective(
                fields[0].split("-")[0],
                m,
                f,
                mpl or _plural_fr(m),
                fpl or _plural_fr(f),
                fields[k],
                rest[0] == "1",
                rest[1],
            )
        )
    return out


def _regular_er(inf: str) -> tuple[tuple[str, str, str, str, str], str]:
    if " " in inf:  # "laisser tomber": conjugate the first word
        head, tail = inf.split(" ", 1)
        forms, pp = _regular_er(head)
        return tuple(f"{f} {tail}" for f in forms), f"{pp} {tail}"  # type: ignore[return-value]
    if inf == "nourrir":
        return ("nourris", "nourrit", "nourrissons", "nourrissez", "nourrissent"), "nourri"
    stem = inf[:-2]
    return (stem + "e", stem + "e", stem + "ons", stem + "ez", stem + "ent"), stem + "é"


def _verbs() -> list[Verb]:
    out = []
    for entry in _ER_VERBS.replace("\n", "").split(";"):
        en, en3, past, inf, kinds = entry.split("|")
        forms, pp = _regular_er(inf)
        out.append(Verb(en, en3, past, forms, pp, "avoir", tuple(kinds.split(","))))
    for entry in _IRREGULAR_VERBS.replace("\n", "").split(";"):
        p = [*entry.split("|"), "", ""]
        en, en3, past = p[0:3]
        forms = (p[3], p[4], p[5], p[6], p[7])
        objects = tuple(o for o in p[10].split(",") if o)
        out.append(Verb(en, en3, past, forms, p[8], p[9], objects, p[11], p[12]))
    return out


NOUNS = _nouns()
PROFESSIONS = _professions()
ADJECTIVES = _adjectives()
VERBS = _verbs()

# Words whose "h" is aspiré: written as if they began with a consonant (la hache, le héros,
# ce hamster, beau hangar, que huit...). huit and onze join them in corpus.NO_ELISION.
H_ASPIRE = frozenset(
    w
    for n in NOUNS
    if n.fr
    in {"hamster", "hérisson", "héron", "hangar", "hall", "hache", "harpe", "hamac"}
    | {"haricot", "homard", "hareng", "héros"}
    for w in (n.fr, n.fr_pl)
)
