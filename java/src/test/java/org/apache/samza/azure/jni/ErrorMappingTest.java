package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.samza.SamzaException;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.errors.AzureCoordinationException;
import org.apache.samza.azure.errors.FencedWriteException;
import org.apache.samza.azure.errors.LeaseHeldException;
import org.apache.samza.azure.errors.LeaseLostException;
import org.apache.samza.azure.errors.NativePanicException;
import org.apache.samza.azure.errors.OutcomeUnknownException;
import org.apache.samza.azure.errors.PreconditionFailedException;
import org.apache.samza.azure.errors.StorageAlreadyExistsException;
import org.apache.samza.azure.errors.StorageAuthenticationException;
import org.apache.samza.azure.errors.StorageBadRequestException;
import org.apache.samza.azure.errors.StorageNotFoundException;
import org.apache.samza.azure.errors.TransientStorageException;
import org.junit.Test;

/** Every native error kind reaches Java as its own exception class; panics never abort. */
public class ErrorMappingTest {

  @Test
  public void everyErrorCodeMapsToItsClass() {
    Map<String, Class<? extends AzureCoordinationException>> expected = new LinkedHashMap<>();
    expected.put("CONFIG", AzureConfigException.class);
    expected.put("NOT_FOUND", StorageNotFoundException.class);
    expected.put("ALREADY_EXISTS", StorageAlreadyExistsException.class);
    expected.put("PRECONDITION_FAILED", PreconditionFailedException.class);
    expected.put("LEASE_HELD", LeaseHeldException.class);
    expected.put("LEASE_LOST", LeaseLostException.class);
    expected.put("TRANSIENT", TransientStorageException.class);
    expected.put("OUTCOME_UNKNOWN", OutcomeUnknownException.class);
    expected.put("AUTHENTICATION", StorageAuthenticationException.class);
    expected.put("BAD_REQUEST", StorageBadRequestException.class);
    expected.put("INTERNAL", AzureCoordinationException.class);
    expected.put("FENCED", FencedWriteException.class);
    for (Map.Entry<String, Class<? extends AzureCoordinationException>> e : expected.entrySet()) {
      try {
        Native.testThrow(e.getKey(), "detail for " + e.getKey());
        fail("no exception for " + e.getKey());
      } catch (AzureCoordinationException ex) {
        assertEquals(e.getKey(), e.getValue(), ex.getClass());
        assertEquals(e.getKey(), ex.code());
        assertTrue(ex.getMessage(), ex.getMessage().contains("detail for " + e.getKey()));
        assertTrue(
            "a SamzaException, so Samza's handlers treat it as theirs",
            ex instanceof SamzaException);
      }
    }
  }

  @Test
  public void unknownCodeIsABadRequestNamingTheCode() {
    try {
      Native.testThrow("NO_SUCH_CODE", "x");
      fail();
    } catch (StorageBadRequestException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("NO_SUCH_CODE"));
    }
  }

  @Test
  public void panicsBecomeExceptionsAndTheLibraryKeepsWorking() {
    for (boolean onRuntime : new boolean[] {false, true}) {
      try {
        Native.testPanic("boom-" + onRuntime, onRuntime);
        fail("panic did not surface");
      } catch (NativePanicException e) {
        assertTrue(e.getMessage(), e.getMessage().contains("boom-" + onRuntime));
        assertEquals(AzureCoordinationException.INTERNAL, e.code());
      }
    }
    Native.noop();
    assertEquals(10 * 1024, Native.echo(10 * 1024).length);
  }

  @Test
  public void nullArgumentsAreRejectedNotCrashed() {
    try {
      Native.testThrow(null, "x");
      fail();
    } catch (StorageBadRequestException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("must not be null"));
    }
  }
}
