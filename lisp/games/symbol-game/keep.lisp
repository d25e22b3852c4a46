;;;; keep.lisp — the world: the Symbol Keep, its places and things, defined with defplace and
;;;; defthing.  Redefine any of them in a running image and the game sees it at once.

(in-package :crow.symbol-game)

(setf *goal* "Your goal: find the CROWN of the Symbol Keep and carry it out through the GATE.")

(defplace gate
    "You stand at the gate of the Symbol Keep, a castle built of packages.  Carved
above the door: ONLY WHAT IS NAMED CAN BE HELD.  A SIGN hangs by the gate."
  :things (sign)
  :exits ((north hall))
  :on-enter (when (carried-p 'crown)
              (win "You step out through the gate with the CROWN held high.")))

(defplace hall
    "A tall hall of grey stone.  Doors lead east and west, stairs go down into the dark,
and a great door of black oak stands to the north."
  :things (lamp)
  :exits ((south gate)
          (north throne-room
                 :if (flag-p :door-open)
                 :else "The oak door is sealed.  Letters on it read: SAY THE WORD THAT MAKES
FUNCTIONS WITHOUT NAMES.")
          (east library)
          (west kitchen)
          (down cellar))
  :say ((lambda
         (cond ((flag-p :door-open) (reply "The oak door is already open."))
               (t (set-flag :door-open)
                  (reply "The oak door swings open without a sound.  The way north is free."))))))

(defplace library
    "Shelves of books, every one of them named by a symbol, line the walls."
  :things (scroll)
  :exits ((west hall)))

(defplace kitchen
    "A cold kitchen.  Nobody has cooked here since the last garbage collection."
  :things (rope)
  :exits ((east hall)))

(defplace cellar
    "A low cellar that smells of old conses.  The stairs lead back up."
  :dark t
  :things (hook)
  :exits ((up hall)))

(defplace throne-room
    "The throne room.  High above the empty throne, on a wooden beam, something glitters."
  :exits ((south hall)
          (up beam
              :if (carried-p 'rope-hook)
              :else "The beam is far too high to reach.  If only you had a rope with a hook.")))

(defplace beam
    "You sit astride the wooden beam, high above the throne."
  :things (crown)
  :exits ((down throne-room)))

(defthing sign "A wooden sign with writing on it."
  :text "The sign reads: THINGS ARE SYMBOLS, PLACES ARE PACKAGES.  WHAT YOU TAKE IS IMPORTED
INTO YOUR INVENTORY PACKAGE.  TWO THINGS JOINED MAKE THE THING THAT BEARS BOTH NAMES.")

(defthing lamp "A brass lamp, its wick trimmed." :portable t :light :lamp-lit)

(defthing scroll "A scroll of old parchment." :portable t
  :text "The scroll reads: IN THE BEGINNING WAS LAMBDA, AND LAMBDA MADE FUNCTIONS WITHOUT
NAMES.")

(defthing rope "A coil of stout rope." :portable t)

(defthing hook "An iron hook." :portable t)

(defthing rope-hook "A rope with an iron hook tied to its end." :portable t
  :join-text "You tie the HOOK to the end of the ROPE.")

(defthing crown "The golden crown of the Symbol Keep." :portable t)
