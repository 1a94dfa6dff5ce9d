package org.apache.samza.azure.errors;

/** Another party holds the lease that was requested. */
public class LeaseHeldException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "LEASE_HELD";

  public LeaseHeldException(String message) {
    super(CODE, message);
  }
}
