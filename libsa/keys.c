/* keys.c - per-uthread keys with destructors */

/*
 * A key is an index into a global table of (sequence, destructor).  The
 * sequence is odd while the key exists and is bumped by create and delete,
 * so a value stored under a deleted key is never seen through a new key
 * that reuses the index.  Each uthread keeps its values in blocks of 32,
 * allocated on first store.
 */

#include "defs.h"

#define KEY_BLOCK 32
#define KEY_NBLOCKS (SA_KEYS_MAX / KEY_BLOCK)

struct key_slot {
	_Atomic uint64_t seq;
	void (*_Atomic dtor)(void *);
};

struct key_entry {
	void *value;
	uint64_t seq;
};

struct key_block {
	struct key_entry e[KEY_BLOCK];
};

static struct key_slot keys[SA_KEYS_MAX];
static spinlock_t keys_lock;

/* keys_fork_child - in a child of fork(): the lock's holder, if any, is
 * not in the child. */
void keys_fork_child(void)
{
	atomic_store(&keys_lock, 0);
}

SA_EXPORT int sa_key_create(sa_key_t *key, void (*dtor)(void *))
{
	if (!key)
		return -EINVAL;
	spin_lock(&keys_lock);
	for (uint32_t i = 0; i < SA_KEYS_MAX; i++) {
		uint64_t s = atomic_load_explicit(&keys[i].seq, memory_order_relaxed);

		if (s & 1)
			continue;
		atomic_store_explicit(&keys[i].dtor, dtor, memory_order_relaxed);
		atomic_store_explicit(&keys[i].seq, s + 1, memory_order_release);
		spin_unlock(&keys_lock);
		*key = i;
		return 0;
	}
	spin_unlock(&keys_lock);
	return -EAGAIN;
}

SA_EXPORT int sa_key_delete(sa_key_t key)
{
	uint64_t s;

	if (key >= SA_KEYS_MAX)
		return -EINVAL;
	spin_lock(&keys_lock);
	s = atomic_load_explicit(&keys[key].seq, memory_order_relaxed);
	if (!(s & 1)) {
		spin_unlock(&keys_lock);
		return -EINVAL;
	}
	atomic_store_explicit(&keys[key].dtor, NULL, memory_order_relaxed);
	atomic_store_explicit(&keys[key].seq, s + 1, memory_order_release);
	spin_unlock(&keys_lock);
	return 0;
}

SA_EXPORT int sa_setspecific(sa_key_t key, const void *value)
{
	struct uthread *me;
	struct key_block *b;
	uint64_t s;

	if (key >= SA_KEYS_MAX)
		return -EINVAL;
	s = atomic_load_explicit(&keys[key].seq, memory_order_acquire);
	if (!(s & 1))
		return -EINVAL;
	me = ut_self();
	if (!me)
		return -ENOMEM;
	if (!me->keys) {
		me->keys = calloc(KEY_NBLOCKS, sizeof(*me->keys));
		if (!me->keys)
			return -ENOMEM;
	}
	b = me->keys[key / KEY_BLOCK];
	if (!b) {
		if (!value)
			return 0; /* NULL is what an absent value reads as */
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		me->keys[key / KEY_BLOCK] = b;
	}
	b->e[key % KEY_BLOCK].value = (void *)value;
	b->e[key % KEY_BLOCK].seq = s;
	return 0;
}

SA_EXPORT void *sa_getspecific(sa_key_t key)
{
	struct uthread *me;
	struct key_block *b;
	struct key_entry *e;

	if (key >= SA_KEYS_MAX)
		return NULL;
	me = ut_self();
	if (!me || !me->keys)
		return NULL;
	b = me->keys[key / KEY_BLOCK];
	if (!b)
		return NULL;
	e = &b->e[key % KEY_BLOCK];
	if (e->seq != atomic_load_explicit(&keys[key].seq, memory_order_acquire))
		return NULL;
	return e->value;
}

/**
 * keys_run_destructors - POSIX rules: each round, every non-NULL value of a
 * live key with a destructor is cleared and passed to it; up to
 * SA_DESTRUCTOR_ITERATIONS rounds while destructors store values again.
 */
void keys_run_destructors(struct uthread *ut)
{
	if (!ut->keys)
		return;
	for (int round = 0; round < SA_DESTRUCTOR_ITERATIONS; round++) {
		bool ran = false;

		for (uint32_t bi = 0; bi < KEY_NBLOCKS; bi++) {
			struct key_block *b = ut->keys[bi];

			if (!b)
				continue;
			for (uint32_t j = 0; j < KEY_BLOCK; j++) {
				uint32_t k = bi * KEY_BLOCK + j;
				struct key_entry *e = &b->e[j];
				void (*dtor)(void *);
				void *v = e->value;

				if (!v)
					continue;
				e->value = NULL;
				if (e->seq != atomic_load_explicit(&keys[k].seq, memory_order_acquire))
					continue;
				dtor = atomic_load_explicit(&keys[k].dtor, memory_order_relaxed);
				if (dtor) {
					dtor(v);
					ran = true;
				}
			}
		}
		if (!ran)
			break;
	}
}

/** keys_release - free @ut's value blocks. */
void keys_release(struct uthread *ut)
{
	if (!ut->keys)
		return;
	for (uint32_t bi = 0; bi < KEY_NBLOCKS; bi++)
		free(ut->keys[bi]);
	free(ut->keys);
	ut->keys = NULL;
}
