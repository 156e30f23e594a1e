/* test_keys.c - per-uthread keys: values, destructors, deletion, limits */
#include "helpers.h"

static sa_key_t key;

Test(keys, set_then_get_same_value, .timeout = 10)
{
	int x;

	h_start(0);
	SA_OK(sa_key_create(&key, NULL));
	SA_OK(sa_setspecific(key, &x));
	cr_assert_eq(sa_getspecific(key), &x);
	SA_OK(sa_setspecific(key, NULL));
	cr_assert_null(sa_getspecific(key));
}

Test(keys, create_null_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_key_create(NULL, NULL), -EINVAL);
}

static void *get_value(void *arg)
{
	(void)arg;
	return sa_getspecific(key);
}

Test(keys, new_key_is_null_everywhere, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_key_create(&key, NULL));
	cr_assert_null(sa_getspecific(key));
	cr_assert_null(h_join(h_spawn(get_value, NULL)));
}

static void *set_yield_get(void *arg)
{
	UT_CHECK_EQ(sa_setspecific(key, arg), 0);
	for (int i = 0; i < 20; i++) {
		sa_yield();
		UT_CHECK(sa_getspecific(key) == arg);
		sa_sleep_ns(10000);
	}
	return sa_getspecific(key);
}

Test(keys, values_are_per_uthread, .timeout = 10)
{
	enum { N = 50 };
	sa_uthread_t t[N];
	int mine;

	h_start(0);
	SA_OK(sa_key_create(&key, NULL));
	SA_OK(sa_setspecific(key, &mine));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(set_yield_get, UP(i + 1));
	for (int i = 0; i < N; i++)
		cr_assert_eq(IP(h_join(t[i])), (uintptr_t)i + 1);
	assert_no_ut_failures();
	cr_assert_eq(sa_getspecific(key), &mine);
}

static _Atomic int dtor_calls;
static _Atomic uintptr_t dtor_last;

static void count_dtor(void *v)
{
	atomic_fetch_add(&dtor_calls, 1);
	atomic_store(&dtor_last, (uintptr_t)v);
}

static void *set_and_return(void *arg)
{
	sa_setspecific(key, arg);
	return NULL;
}

Test(keys, destructor_runs_at_return, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_key_create(&key, count_dtor));
	h_join(h_spawn(set_and_return, UP(0x77)));
	cr_assert_eq(atomic_load(&dtor_calls), 1);
	cr_assert_eq(atomic_load(&dtor_last), 0x77u);
}

static void *set_and_exit(void *arg)
{
	sa_setspecific(key, arg);
	sa_exit(NULL);
}

Test(keys, destructor_runs_at_sa_exit, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_key_create(&key, count_dtor));
	h_join(h_spawn(set_and_exit, UP(0x88)));
	cr_assert_eq(atomic_load(&dtor_calls), 1);
	cr_assert_eq(atomic_load(&dtor_last), 0x88u);
}

Test(keys, destructor_runs_for_detached, .timeout = 10)
{
	sa_attr_t a;

	h_start(0);
	SA_OK(sa_key_create(&key, count_dtor));
	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setdetached(&a, 1));
	SA_OK(sa_spawn(NULL, &a, set_and_return, UP(0x99)));
	for (int i = 0; i < 500 && atomic_load(&dtor_calls) == 0; i++)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&dtor_calls), 1);
	cr_assert_eq(atomic_load(&dtor_last), 0x99u);
}

Test(keys, destructor_skipped_for_null_value, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_key_create(&key, count_dtor));
	h_join(h_spawn(set_and_return, NULL));
	cr_assert_eq(atomic_load(&dtor_calls), 0);
}

static _Atomic int again_left;

static void resetting_dtor(void *v)
{
	atomic_fetch_add(&dtor_calls, 1);
	if (atomic_fetch_sub(&again_left, 1) > 0)
		sa_setspecific(key, v);
}

Test(keys, destructor_rounds_capped_at_iterations, .timeout = 10)
{
	h_start(0);
	atomic_store(&again_left, 1000);
	SA_OK(sa_key_create(&key, resetting_dtor));
	h_join(h_spawn(set_and_return, UP(1)));
	cr_assert_eq(atomic_load(&dtor_calls), SA_DESTRUCTOR_ITERATIONS);
}

Test(keys, destructor_repeats_while_value_reset, .timeout = 10)
{
	h_start(0);
	atomic_store(&again_left, 2); /* sets the value again twice */
	SA_OK(sa_key_create(&key, resetting_dtor));
	h_join(h_spawn(set_and_return, UP(1)));
	cr_assert_eq(atomic_load(&dtor_calls), 3);
}

static sa_key_t key2;
static _Atomic int dtor2_calls;

static void dtor2(void *v)
{
	(void)v;
	atomic_fetch_add(&dtor2_calls, 1);
}

static void dtor1_sets_key2(void *v)
{
	atomic_fetch_add(&dtor_calls, 1);
	if (atomic_load(&dtor_calls) == 1)
		sa_setspecific(key2, v);
}

static void *set_key1_only(void *arg)
{
	sa_setspecific(key, arg);
	return NULL;
}

Test(keys, destructor_sets_other_key_next_round, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_key_create(&key2, dtor2));
	SA_OK(sa_key_create(&key, dtor1_sets_key2));
	h_join(h_spawn(set_key1_only, UP(3)));
	cr_assert_eq(atomic_load(&dtor_calls), 1);
	cr_assert_eq(atomic_load(&dtor2_calls), 1);
}

Test(keys, delete_runs_no_destructor, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_key_create(&key, count_dtor));
	SA_OK(sa_setspecific(key, UP(5)));
	SA_OK(sa_key_delete(key));
	cr_assert_eq(atomic_load(&dtor_calls), 0);
}

static sa_sem_t go, ready;

static void *set_wait_exit(void *arg)
{
	sa_setspecific(key, arg);
	sa_sem_post(&ready);
	sa_sem_wait(&go);
	return NULL;
}

Test(keys, deleted_key_destructor_not_run_at_exit, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&go, 0));
	SA_OK(sa_sem_init(&ready, 0));
	SA_OK(sa_key_create(&key, count_dtor));
	t = h_spawn(set_wait_exit, UP(6));
	SA_OK(sa_sem_wait(&ready));
	SA_OK(sa_key_delete(key));
	SA_OK(sa_sem_post(&go));
	h_join(t);
	cr_assert_eq(atomic_load(&dtor_calls), 0);
}

Test(keys, deleted_key_forgets_values, .timeout = 10)
{
	sa_key_t k2[8];

	h_start(0);
	SA_OK(sa_key_create(&key, NULL));
	SA_OK(sa_setspecific(key, UP(0x55)));
	SA_OK(sa_key_delete(key));
	cr_assert_null(sa_getspecific(key));
	/* whatever slot the new keys get, they start out NULL */
	for (int i = 0; i < 8; i++) {
		SA_OK(sa_key_create(&k2[i], NULL));
		cr_assert_null(sa_getspecific(k2[i]),
			       "new key %u sees a deleted key's value", k2[i]);
	}
}

static void *set_wait_get(void *arg)
{
	sa_setspecific(key, arg);
	sa_sem_post(&ready);
	sa_sem_wait(&go);
	return sa_getspecific(key);
}

Test(keys, recreated_key_starts_null_in_live_uthread, .timeout = 10)
{
	enum { N = 16 };
	sa_uthread_t t[N];
	sa_key_t old;

	h_start(0);
	SA_OK(sa_sem_init(&go, 0));
	SA_OK(sa_sem_init(&ready, 0));
	SA_OK(sa_key_create(&key, NULL));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(set_wait_get, UP(0x100 + i));
	for (int i = 0; i < N; i++)
		SA_OK(sa_sem_wait(&ready));
	old = key;
	SA_OK(sa_key_delete(old));
	SA_OK(sa_key_create(&key, NULL)); /* likely the same slot */
	for (int i = 0; i < N; i++)
		SA_OK(sa_sem_post(&go));
	for (int i = 0; i < N; i++)
		cr_assert_null(h_join(t[i]), "uthread %d sees its old value", i);
}

Test(keys, delete_unknown_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_key_delete(123456), -EINVAL);
	SA_OK(sa_key_create(&key, NULL));
	SA_OK(sa_key_delete(key));
	SA_ERR(sa_key_delete(key), -EINVAL);
}

Test(keys, setspecific_unknown_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_setspecific(123456, UP(1)), -EINVAL);
	SA_OK(sa_key_create(&key, NULL));
	SA_OK(sa_key_delete(key));
	SA_ERR(sa_setspecific(key, UP(1)), -EINVAL);
}

Test(keys, getspecific_bad_key_null, .timeout = 10)
{
	h_start(0);
	cr_assert_null(sa_getspecific(123456));
	cr_assert_null(sa_getspecific(SA_KEYS_MAX));
	cr_assert_null(sa_getspecific(UINT32_MAX));
}

Test(keys, create_eagain_at_keys_max, .timeout = 10)
{
	static sa_key_t k[SA_KEYS_MAX + 1];
	int n = 0, r;

	h_start(0);
	while ((r = sa_key_create(&k[n], NULL)) == 0) {
		n++;
		cr_assert_leq(n, SA_KEYS_MAX, "more than SA_KEYS_MAX keys made");
	}
	cr_assert_eq(r, -EAGAIN, "sa_key_create returned %d", r);
	cr_assert_eq(n, SA_KEYS_MAX);
	/* all distinct and usable */
	for (int i = 0; i < n; i++)
		SA_OK(sa_setspecific(k[i], UP(i + 1)));
	for (int i = 0; i < n; i++)
		cr_assert_eq(IP(sa_getspecific(k[i])), (uintptr_t)i + 1);
	/* freeing one lets one more be made */
	SA_OK(sa_key_delete(k[17]));
	SA_OK(sa_key_create(&k[17], NULL));
	cr_assert_null(sa_getspecific(k[17]));
	SA_ERR(sa_key_create(&k[n], NULL), -EAGAIN);
}

static void *set_many(void *arg)
{
	sa_key_t *ks = arg;

	for (int i = 0; i < 64; i++)
		UT_CHECK_EQ(sa_setspecific(ks[i], UP(i + 1)), 0);
	for (int i = 0; i < 64; i++)
		UT_CHECK_EQ(IP(sa_getspecific(ks[i])), i + 1);
	return NULL;
}

Test(keys, destructor_per_key_per_uthread, .timeout = 10)
{
	static sa_key_t ks[64];
	enum { N = 20 };
	sa_uthread_t t[N];

	h_start(0);
	for (int i = 0; i < 64; i++)
		SA_OK(sa_key_create(&ks[i], count_dtor));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(set_many, ks);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&dtor_calls), 64 * N);
}
