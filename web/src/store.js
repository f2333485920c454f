// The survey log and the field collection on the phone: IndexedDB, which survives reloads,
// closing the browser and having no network. The browser is asked to keep it (persistent
// storage), so it is not evicted when the phone runs short of space; a full store refuses the
// new record and keeps every other.

const DB = "hh";
export const DIAGNOSES = "diagnoses";
export const FRAMES = "frames"; // the field collection: one record per kept frame, its JPEG inside

export class StoreFull extends Error {}

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export async function openLog() {
  const opening = indexedDB.open(DB, 2);
  opening.onupgradeneeded = () => {
    for (const name of [DIAGNOSES, FRAMES]) {
      if (!opening.result.objectStoreNames.contains(name)) opening.result.createObjectStore(name, { keyPath: "id", autoIncrement: true });
    }
  };
  const db = await new Promise((resolve, reject) => {
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
    // Another tab holding an older version open would hold this one up for ever: said instead.
    opening.onblocked = () => reject(new Error("another tab of this page holds the log open: close it, then reload"));
  });
  db.onversionchange = () => db.close(); // a newer page in another tab may upgrade it
  // Ask once; the browser may say no (then the log still works, but may be evicted under pressure).
  const persisted = navigator.storage?.persist ? await navigator.storage.persist().catch(() => false) : false;
  return { db, persisted };
}

// Store one record; StoreFull when the phone's storage (or the browser's quota) is full.
export function addRecord(log, record, store = DIAGNOSES) {
  return new Promise((resolve, reject) => {
    const transaction = log.db.transaction(store, "readwrite");
    const adding = transaction.objectStore(store).add(record);
    transaction.oncomplete = () => resolve(adding.result);
    const failed = () => {
      const error = transaction.error || adding.error;
      reject(error && error.name === "QuotaExceededError"
        ? new StoreFull(`The phone's storage is full: this ${store === FRAMES ? "frame" : "diagnosis"} was not saved. `
          + "Export and free some space; nothing saved before is lost.")
        : error);
    };
    transaction.onabort = failed; // a failed add aborts its transaction: nothing half-stored
  });
}

export function allRecords(log, store = DIAGNOSES) {
  return request(log.db.transaction(store, "readonly").objectStore(store).getAll());
}

export function clearRecords(log, store) {
  return request(log.db.transaction(store, "readwrite").objectStore(store).clear());
}
